"""Read a YAML config file keeping the line of every key and list item, so each problem can say ``file:line``.

Why not ``yaml.safe_load``: it forgets where things were, and it silently keeps the last of two
equal keys. Here the node tree is composed and turned into data by hand, recording lines,
reporting duplicate keys, and turning unreadable files and syntax errors into :class:`ConfigIssue`
instead of exceptions. Nothing here knows what a policy or a manifest is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clearance.config.issues import ConfigIssue, ConfigPath, display_path, dotted

__all__ = ["YamlDocument", "read_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class YamlDocument:
    """A parsed YAML file: its data, the line of every key / list item, and parse problems."""

    file: str
    data: Any = None
    lines: dict[ConfigPath, int] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    sha256: str | None = None


def read_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file, recording line numbers and flagging duplicate keys and syntax errors.

    PyYAML's ``safe_load`` keeps the last of two equal keys silently; a policy that says
    ``min: 2`` and later ``min: 1`` must not pass review, so we compose the node tree and
    build the data ourselves.
    """
    doc = YamlDocument(file=display_path(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        doc.issues.append(ConfigIssue(doc.file, None, "", "file not found"))
        return doc
    except OSError as exc:
        doc.issues.append(ConfigIssue(doc.file, None, "", f"cannot read: {exc.strerror or exc}"))
        return doc
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc.issues.append(ConfigIssue(doc.file, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return doc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            doc.issues.append(ConfigIssue(doc.file, 1, "", "the file is empty"))
            return doc
        doc.data = _build(node, (), loader, doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context or 'invalid YAML'}"
        if exc.problem and exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            # e.g. an unclosed bracket: say where the construct began, not only where the file ended
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        doc.issues.append(ConfigIssue(doc.file, mark.line + 1 if mark else None, "", message))
        doc.data = None
    except yaml.YAMLError as exc:
        doc.issues.append(ConfigIssue(doc.file, None, "", f"YAML syntax error: {exc}"))
        doc.data = None
    finally:
        loader.dispose()
    return doc


def _build(node: yaml.Node, path: ConfigPath, loader: yaml.SafeLoader, doc: YamlDocument) -> Any:
    """Python data from a node, filling ``doc.lines`` and reporting duplicate keys."""
    if not path:
        doc.lines[()] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                doc.issues.append(ConfigIssue(doc.file, line, dotted(path + (key,)),
                                              f"duplicate key (first defined on line {first_seen[key]})"))
            else:
                first_seen[key] = line
        # Resolve `<<: *anchor` merges the way PyYAML does; explicit keys then win over merged ones.
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node)
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, path + (key,), loader, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines[path + (i,)] = item.start_mark.line + 1
            items.append(_build(item, path + (i,), loader, doc))
        return items
    return loader.construct_object(node, deep=True)


def _key(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    key = loader.construct_object(node, deep=True)
    try:
        hash(key)
    except TypeError:
        raise yaml.constructor.ConstructorError(
            None, None, "a mapping key must be a plain value, not a list or mapping", node.start_mark
        ) from None
    return key

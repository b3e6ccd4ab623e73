"""Read a YAML config file keeping the line of every key and list item, so each problem can say ``file:line``.

Why not ``yaml.safe_load``: it forgets where things were, and it silently keeps the last of two
equal keys. Here the node tree is composed and turned into data by hand, recording lines,
reporting duplicate keys, and turning unreadable files and syntax errors into :class:`ConfigIssue`
instead of exceptions. Nothing here knows what a policy or a manifest is.

Limits (:mod:`~clearance.config.limits`): a file over ``CLEARANCE_CONFIG_MAX_FILE_BYTES`` is refused
from its size alone, before a byte of it is parsed; and a document that would expand (through
aliases) to more values than a plain file at that size could hold, nest deeper than
:data:`~clearance.config.limits.MAX_DEPTH`, or contain itself, is refused after composing its node
graph (linear in the file) and before building any data from it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clearance.config.issues import ConfigIssue, ConfigPath, display_path, dotted
from clearance.config.limits import ConfigLimits, current_limits, size_text

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


class _TooBig(Exception):
    """The document is over a limit; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def too_big_message(size: int, limit: int) -> str:
    """Why a file of ``size`` bytes is not read (names the setting that would let it through)."""
    return (f"is {size_text(size)} ({size} bytes), over the {size_text(limit)} limit for one config file: not "
            f"parsed (a config file this big is a mistake; if not, raise CLEARANCE_CONFIG_MAX_FILE_BYTES)")


def _read_bounded(path: Path, limit: int) -> bytes | int:
    """The file's bytes, or its size when it is over ``limit`` (judged from its size, then from what was read:
    a file that grows meanwhile, or a device, is never read past the limit)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            return size
        raw = f.read(limit + 1)
    return raw if len(raw) <= limit else max(size, len(raw))


def read_yaml(path: Path, limits: ConfigLimits | None = None) -> YamlDocument:
    """Parse one YAML file, recording line numbers and flagging duplicate keys and syntax errors.

    PyYAML's ``safe_load`` keeps the last of two equal keys silently; a policy that says
    ``min: 2`` and later ``min: 1`` must not pass review, so we compose the node tree and
    build the data ourselves. ``limits`` default to the settings' (:func:`~clearance.config.limits.current_limits`).
    """
    limits = limits or current_limits()
    doc = YamlDocument(file=display_path(path))
    try:
        raw = _read_bounded(path, limits.max_file_bytes)
    except FileNotFoundError:
        doc.issues.append(ConfigIssue(doc.file, None, "", "file not found"))
        return doc
    except OSError as exc:
        doc.issues.append(ConfigIssue(doc.file, None, "", f"cannot read: {exc.strerror or exc}"))
        return doc
    if isinstance(raw, int):
        doc.issues.append(ConfigIssue(doc.file, None, "", too_big_message(raw, limits.max_file_bytes)))
        return doc
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc.issues.append(ConfigIssue(doc.file, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return doc
    if _read_fast(text, limits, doc):
        return doc
    loader = _BoundedLoader(text, limits.max_depth)
    try:
        node = loader.get_single_node()
        if node is None:
            doc.issues.append(ConfigIssue(doc.file, 1, "", "the file is empty"))
            return doc
        _measure(node, limits)
        doc.data = _build(node, (), loader, doc)
    except _TooBig as exc:
        doc.issues.append(ConfigIssue(doc.file, exc.line, "", exc.message))
        doc.data = None
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


#: libyaml's parser (PyYAML's C extension), when this PyYAML was built with it: ~10× faster than the Python one.
_FAST_LOADER: type | None = getattr(yaml, "CSafeLoader", None) if getattr(yaml, "__with_libyaml__", False) else None


def _read_fast(text: str, limits: ConfigLimits, doc: YamlDocument) -> bool:
    """The well-formed, within-limits case with libyaml's composer (which bounds nesting itself); False — nothing
    recorded — for anything else, which the Python loader then reads to say exactly what is wrong and where."""
    if _FAST_LOADER is None:
        return False
    loader = _FAST_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return False
        _measure(node, limits)
        lines: dict[ConfigPath, int] = {}
        probe = YamlDocument(file=doc.file, lines=lines)
        data = _build(node, (), loader, probe)
        if probe.issues:  # duplicate keys and the like: reported by the slow path, in its words
            return False
    except (yaml.YAMLError, _TooBig, RecursionError):
        return False
    finally:
        loader.dispose()
    doc.data, doc.lines = data, lines
    return True


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to compose nodes nested deeper than ``max_depth``.

    PyYAML composes recursively (two frames per level): unbounded, ``[[[[…`` ends in a
    RecursionError; bounded here, it ends in an issue on the line where it went too deep.
    """

    def __init__(self, stream: str, max_depth: int) -> None:
        super().__init__(stream)
        self._depth = 0
        self._max_depth = max_depth

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                mark = self.peek_event().start_mark
                raise _TooBig(f"nested deeper than {self._max_depth} levels: not parsed", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node, limits: ConfigLimits) -> None:
    """Refuse a node graph that would build into too many values, too deep, or into itself.

    Aliases make the composed graph a DAG (or, with an alias inside its own anchor, a cycle) whose
    tree can be exponentially larger than the file: measure the tree on the graph (each node once,
    without recursion) before building it.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes on the path from the root to the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            line = node.start_mark.line + 1
            if size[key] > limits.max_values:
                raise _TooBig(f"expands to more than {limits.max_values} values (through aliases: '*name' repeats "
                              f"'&name'), more than a {size_text(limits.max_file_bytes)} file could hold: "
                              f"not parsed", line)
            if depth[key] > limits.max_depth:
                raise _TooBig(f"nests deeper than {limits.max_depth} levels through aliases: not parsed", line)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _TooBig("an alias refers to a mapping or list that contains it (a structure that contains "
                          "itself): not parsed", node.start_mark.line + 1)
        open_nodes.add(key)
        stack.append((node, True))
        stack += [(kid, False) for kid in _children(node) if id(kid) not in size]


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
    try:
        return loader.construct_object(node, deep=True)
    except ValueError:
        # A scalar that looks like a timestamp but is no date (2027-13-01): keep the text, so the schema
        # names the field and its line ("not a valid date") instead of the parser crashing.
        if isinstance(node, yaml.ScalarNode):
            return node.value
        raise


def _key(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    key = loader.construct_object(node, deep=True)
    try:
        hash(key)
    except TypeError:
        raise yaml.constructor.ConstructorError(
            None, None, "a mapping key must be a plain value, not a list or mapping", node.start_mark
        ) from None
    return key

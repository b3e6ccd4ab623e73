"""Load and validate the YAML under ``configs/``, with errors a person can act on.

Every problem becomes a :class:`ConfigIssue` printed as ``file:line: field: message``
(``configs/policies/high.yaml:14: approvals.roles.compliance.min: must be >= 1``), and
all problems of all files are reported together, not just the first.

Layout of a config directory::

    principals.yaml            who may initiate / approve, and their identity per channel
    policies/<tier>.yaml       one Policy per risk tier
    models/<name>.yaml         one ModelManifest per model
    waivers.yaml               optional: accepted failures of gate checks, each with an expiry
    schemas/*.schema.json      generated JSON Schemas for editors (not read here)
"""

from __future__ import annotations

import hashlib
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from clearance.config.issues import (
    ConfigError,
    ConfigIssue,
    ConfigPath,
    LineMap,
    display_path,
    dotted,
    issue_at,
    line_of,
)
from clearance.config.schema import ModelManifest, Policy, Principals, Waivers
from clearance.config.tighten import effective_policy as _tighten
from clearance.config.tighten import fmt
from gates.base import GateConfigError, parse_gate_config, registered_gates
from gates.waivers import CHECK_PATTERN, VERSION_PATTERN, Waiver

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "ConfigSet",
    "load_config_dir",
    "load_manifest",
    "load_policy",
    "load_principals",
    "load_waivers",
    "read_yaml",
    "validate_paths",
]

M = TypeVar("M", bound=BaseModel)
_KINDS: dict[str, type[BaseModel]] = {"policy": Policy, "manifest": ModelManifest, "principals": Principals,
                                      "waivers": Waivers}
_MERGE_TAG = "tag:yaml.org,2002:merge"


# --------------------------------------------------------------------------- YAML with line numbers


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


# --------------------------------------------------------------------------- pydantic errors → issues


def issues_from_validation(errors: Iterable[dict[str, Any]], model: type[BaseModel], file: str,
                           lines: LineMap, prefix: ConfigPath = ()) -> list[ConfigIssue]:
    """Turn pydantic errors (relative to ``model`` at ``prefix``) into located, human issues."""
    issues = []
    for err in errors:
        loc = tuple(err["loc"])
        key_error = bool(loc) and loc[-1] == "[key]"  # a bad dict key, e.g. a role name
        if key_error:
            loc = loc[:-1]
        path = prefix + loc
        message = humanize(err, model, loc)
        if key_error:
            message = f"invalid key: {message}"
        issues.append(ConfigIssue(file, line_of(lines, path), dotted(path), message))
    return issues


# pydantic's wording → ours; {…} are filled from the error's ctx.
_BY_TYPE = {
    "missing": "required",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "set_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "time_delta_type": "must be a duration like 30m, 24h or 7d",
    "time_delta_parsing": "must be a duration like 30m, 24h or 7d",
    "datetime_type": "must be a date-time like 2025-01-31T12:00:00Z",
    "datetime_parsing": "must be a date-time like 2025-01-31T12:00:00Z",
    "datetime_from_date_parsing": "must be a date-time like 2025-01-31T12:00:00Z",
    "timezone_aware": "must be a date-time with a timezone, like 2025-01-31T12:00:00Z",
    "date_type": "must be a date like 2025-01-31",
    "date_parsing": "must be a date like 2025-01-31",
    "url_parsing": "must be a URL",
    "none_required": "must be null",
}
# Patterns of schema.py's constrained strings, said in words.
_PATTERNS = {
    r"^[a-z0-9][a-z0-9_.-]*$": "must be lower-case letters, digits, '_', '.' or '-', starting with a letter or digit",
    r"^[0-9a-f]{64}$": "must be a SHA-256: 64 lower-case hex characters",
    r"^[UW][A-Z0-9]{2,}$": "must be a Slack user id like U0123ABCD",
    r"^[^@\s]+@[^@\s]+$": "must be an e-mail address",
    CHECK_PATTERN: "must be a check id, or a prefix of one ending in * (format:*); no spaces, and not * alone",
    VERSION_PATTERN: "must be a version (1.4.2) or a prefix of one ending in * (1.4.*); not * alone",
}
# Show what was given for type-ish errors, where it helps spotting the typo.
_SHOW_INPUT = {"enum", "literal_error", "int_parsing", "float_parsing", "bool_parsing", "string_pattern_mismatch",
               "time_delta_parsing", "int_type", "float_type", "string_type", "bool_type", "int_from_float"}


def humanize(err: dict[str, Any], model: type[BaseModel], loc: ConfigPath) -> str:
    """A short message for one pydantic error (``must be >= 1``, ``unknown key (allowed: …)``…)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    if kind in ("enum", "literal_error"):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", ""))) or [str(ctx.get("expected", ""))]
        message = f"must be one of: {', '.join(options)}"
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        message = _PATTERNS.get(pattern, f"must match the pattern {pattern}")
    elif kind in ("value_error", "assertion_error"):
        message = re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    elif kind in _BY_TYPE:
        try:
            message = _BY_TYPE[kind].format(**ctx)
        except (KeyError, IndexError):
            message = _BY_TYPE[kind].split(" {")[0]
    else:  # a type we did not word ourselves: pydantic's, in the same voice
        msg = err["msg"].replace("Input should be", "must be")
        message = msg[:1].lower() + msg[1:]
    given = err.get("input")
    if kind in _SHOW_INPUT and (given is None or isinstance(given, (str, int, float, bool))):
        message += f" (got {_show(given)})"
    return message


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return fmt(value)


def _fields_at(model: type[BaseModel], path: ConfigPath) -> list[str]:
    """Names of the keys allowed at ``path`` inside ``model`` (for "unknown key" messages)."""
    tp: Any = model
    for part in path:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return []
            tp = info.annotation
        elif origin in (list, tuple, set, frozenset):
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        elif origin is dict:
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, …]`` → X; ``X | None`` → X (the part that can hold keys)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = next((a for a in options if isinstance(a, type) and issubclass(a, BaseModel)), options[0])
        else:
            return tp


# --------------------------------------------------------------------------- one file


@dataclass
class _Loaded:
    """One config file after validation: the model (when valid) and what was wrong."""

    doc: YamlDocument
    model: Any = None
    parsed: Any = None  # the model as the schema accepted it, even if other rules then failed

    @property
    def issues(self) -> list[ConfigIssue]:
        return self.doc.issues


def _check_gates(doc: YamlDocument, prefix: ConfigPath) -> list[ConfigIssue]:
    """Each gate id is registered and each gate's ``config`` passes the gate's own config model."""
    items = doc.data
    for part in prefix:
        items = items.get(part) if isinstance(items, dict) else None
    if not isinstance(items, list):
        return []
    reported = {issue.field for issue in doc.issues}
    issues: list[ConfigIssue] = []
    known = registered_gates()
    for i, spec in enumerate(items):
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            continue  # the schema already says what is wrong with it
        gate_id, path = spec["id"], prefix + (i,)
        if dotted(path + ("id",)) in reported:
            continue
        if gate_id not in known:
            issues.append(issue_at(doc.file, doc.lines, path + ("id",),
                                   f"unknown gate '{gate_id}' (known: {', '.join(sorted(known)) or 'none'})"))
            continue
        raw = spec.get("config", {})
        if not isinstance(raw, dict):
            continue
        try:
            parse_gate_config(gate_id, raw)
        except GateConfigError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                issues += issues_from_validation(cause.errors(), known[gate_id].config_model, doc.file, doc.lines,
                                                 path + ("config",))
            else:
                issues.append(issue_at(doc.file, doc.lines, path + ("config",), str(exc)))
    return issues


def _check_waiver_gates(doc: YamlDocument) -> list[ConfigIssue]:
    """Each waiver names a registered gate (a waiver of a gate that never runs is a typo)."""
    items = doc.data.get("waivers") if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        return []
    reported = {issue.field for issue in doc.issues}
    known = registered_gates()
    issues = []
    for i, item in enumerate(items):
        gate_id = item.get("gate") if isinstance(item, dict) else None
        path = ("waivers", i, "gate")
        if isinstance(gate_id, str) and gate_id not in known and dotted(path) not in reported:
            issues.append(issue_at(doc.file, doc.lines, path,
                                   f"unknown gate '{gate_id}' (known: {', '.join(sorted(known)) or 'none'})"))
    return issues


def _semantic_checks(kind: str, model: BaseModel, doc: YamlDocument) -> list[ConfigIssue]:
    """Rules within one file that the schema cannot express."""
    issues = []
    if isinstance(model, Policy) and model.approvals.roles and not model.approvals.channels:
        issues.append(issue_at(doc.file, doc.lines, ("approvals", "channels"),
                               "is empty, but approvals.roles needs sign-off: nobody could approve"))
    return issues


def _refine_principals(issues: list[ConfigIssue], doc: YamlDocument) -> list[ConfigIssue]:
    """Point "x belongs to two principals" (a whole-file error) at the second holder's line."""
    refined = []
    for issue in issues:
        match = re.fullmatch(r"(\w+) '(.*)' belongs to two principals", issue.message)
        people = doc.data.get("principals") if isinstance(doc.data, dict) else None
        if issue.field == "" and match and isinstance(people, list):
            attr, value = match.groups()
            holders = [i for i, p in enumerate(people) if isinstance(p, dict) and str(p.get(attr)) == value]
            if len(holders) > 1:
                path = ("principals", holders[1], attr)
                issue = issue_at(doc.file, doc.lines, path, f"'{value}' is also the {attr} of principals.{holders[0]}")
        refined.append(issue)
    return refined


def _load_file(path: Path, kind: str, doc: YamlDocument | None = None) -> _Loaded:
    """Parse (unless ``doc`` is given), validate against the schema and the gate registry, collect every issue."""
    doc = doc or read_yaml(path)
    loaded = _Loaded(doc)
    if doc.data is None and doc.issues:
        return loaded
    model_cls = _KINDS[kind]
    try:
        loaded.model = model_cls.model_validate(doc.data)
    except ValidationError as exc:
        found = issues_from_validation(exc.errors(), model_cls, doc.file, doc.lines)
        doc.issues.extend(_refine_principals(found, doc) if kind == "principals" else found)
    gates_at = {"policy": ("gates",), "manifest": ("policy_overrides", "gates")}.get(kind)
    if gates_at:
        doc.issues.extend(_check_gates(doc, gates_at))
    if kind == "waivers":
        doc.issues.extend(_check_waiver_gates(doc))
    if loaded.model is not None:
        doc.issues.extend(_semantic_checks(kind, loaded.model, doc))
    doc.issues.sort(key=_issue_order)
    loaded.parsed = loaded.model
    if doc.issues:
        loaded.model = None
    return loaded


def _issue_order(issue: ConfigIssue) -> tuple[str, int, str]:
    return (issue.file, issue.line or 0, issue.field)


def _load_one(path: Path, kind: str, model_cls: type[M]) -> M:
    loaded = _load_file(Path(path), kind)
    if loaded.issues:
        raise ConfigError(loaded.issues)
    assert isinstance(loaded.model, model_cls)
    return loaded.model


def load_policy(path: Path | str) -> Policy:
    """Load one ``policies/<tier>.yaml``; raises :class:`ConfigError` listing every problem."""
    return _load_one(Path(path), "policy", Policy)


def load_manifest(path: Path | str) -> ModelManifest:
    """Load one ``models/<name>.yaml``; raises :class:`ConfigError` listing every problem."""
    return _load_one(Path(path), "manifest", ModelManifest)


def load_principals(path: Path | str) -> Principals:
    """Load ``principals.yaml``; raises :class:`ConfigError` listing every problem."""
    return _load_one(Path(path), "principals", Principals)


def load_waivers(path: Path | str) -> Waivers:
    """Load one ``waivers.yaml`` on its own (without the rules across files, see :func:`load_config_dir`)."""
    return _load_one(Path(path), "waivers", Waivers)


# --------------------------------------------------------------------------- a config directory


@dataclass
class ConfigSet:
    """Everything under one config directory, valid file by file and across files."""

    root: Path
    policies: dict[str, Policy]
    manifests: dict[str, ModelManifest]
    principals: Principals
    files: dict[str, str] = field(default_factory=dict, repr=False)
    _lines: dict[str, tuple[str, LineMap]] = field(default_factory=dict, repr=False)
    waivers: list[Waiver] = field(default_factory=list)

    def manifest(self, model_name: str) -> ModelManifest:
        """The manifest of ``model_name``; KeyError naming the known models otherwise."""
        if model_name not in self.manifests:
            raise KeyError(f"no model {model_name!r} in {display_path(self.root / 'models')} "
                           f"(known: {', '.join(sorted(self.manifests)) or 'none'})")
        return self.manifests[model_name]

    def effective_policy(self, model_name: str) -> Policy:
        """The policy of the model's risk tier, tightened by the manifest's ``policy_overrides``."""
        manifest = self.manifest(model_name)
        source, lines = self._lines.get(model_name, (display_path(self.root / "models" / f"{model_name}.yaml"), {}))
        return _tighten(self.policies[manifest.risk_tier], manifest.policy_overrides, source=source, lines=lines)

    def waivers_for(self, model_name: str, version: str) -> list[Waiver]:
        """The waivers scoped to this model version, in file order (expired ones too: expiry is judged
        when a waiver is applied)."""
        return [w for w in self.waivers if w.in_scope(model_name, version)]


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def _config_root(path: Path) -> Path:
    """``path`` itself, or its ``configs/`` when given the repository root."""
    if not (path / "policies").is_dir() and (path / "configs").is_dir():
        return path / "configs"
    return path


def _collect_dir(config_dir: Path) -> tuple[ConfigSet | None, list[ConfigIssue]]:
    """Load a config directory and check the rules that span files."""
    root = _config_root(Path(config_dir))
    issues: list[ConfigIssue] = []
    if not root.is_dir():
        return None, [ConfigIssue(display_path(root), None, "", "not a directory")]

    people = _load_file(root / "principals.yaml", "principals")
    issues += people.issues
    principals: Principals | None = people.model

    policies: dict[str, _Loaded] = {}
    broken_tiers: set[str] = set()  # policy files that exist but failed: don't cascade "no policy"
    if not (root / "policies").is_dir():
        issues.append(ConfigIssue(display_path(root / "policies"), None, "",
                                  "directory not found (one policies/<tier>.yaml per risk tier)"))
    else:
        for path in _yaml_files(root / "policies"):
            loaded = _load_file(path, "policy")
            issues += loaded.issues
            if loaded.model is None:
                broken_tiers.add(path.stem)
                continue
            policy: Policy = loaded.model
            if policy.tier != path.stem:
                issues.append(issue_at(loaded.doc.file, loaded.doc.lines, ("tier",),
                                       f"'{policy.tier}' does not match the file name {path.name} "
                                       f"(a policy lives in policies/<tier>.yaml)"))
            policies.setdefault(policy.tier, loaded)
            if principals is not None:
                issues += _quorum_issues(policy, principals, loaded.doc, excluded=set(), prefix=())

    manifests: dict[str, _Loaded] = {}
    broken_models: set[str] = set()  # manifest files that exist but failed: don't cascade "no model"
    models_dir = root / "models"
    for path in _yaml_files(models_dir) if models_dir.is_dir() else []:
        loaded = _load_file(path, "manifest")
        issues += loaded.issues
        if loaded.model is None:
            broken_models.add(path.stem)
            continue
        found = _manifest_issues(loaded, path, policies, broken_tiers, principals)
        issues += found
        if loaded.model.name in manifests:
            continue
        manifests[loaded.model.name] = loaded

    waivers: _Loaded | None = None
    if (root / "waivers.yaml").is_file():
        waivers = _load_file(root / "waivers.yaml", "waivers")
        found = list(waivers.issues)
        if waivers.parsed is not None:  # an unknown gate does not hide the other waivers' problems
            found += _waiver_issues(waivers, manifests, broken_models, principals)
        issues += sorted(found, key=_issue_order)

    if issues or principals is None:
        return None, issues
    docs = [people.doc] + [x.doc for x in (*policies.values(), *manifests.values())]
    docs += [waivers.doc] if waivers else []
    files = {d.file: d.sha256 or "" for d in docs}
    config = ConfigSet(
        root=root,
        policies={tier: loaded.model for tier, loaded in policies.items()},
        manifests={name: loaded.model for name, loaded in manifests.items()},
        principals=principals,
        files=files,
        _lines={name: (loaded.doc.file, loaded.doc.lines) for name, loaded in manifests.items()},
        waivers=list(waivers.model.waivers) if waivers else [],
    )
    return config, []


def _waiver_issues(loaded: _Loaded, manifests: dict[str, _Loaded], broken_models: set[str],
                   principals: Principals | None) -> list[ConfigIssue]:
    """Each waiver is for a known model and approved by a known principal who did not author that model."""
    doc = loaded.doc
    issues = []
    known_people = ", ".join(sorted(p.id for p in principals.principals)) if principals else ""
    for i, waiver in enumerate(loaded.parsed.waivers):
        at = ("waivers", i)
        manifest = manifests.get(waiver.model)
        if manifest is None and waiver.model not in broken_models:
            issues.append(issue_at(doc.file, doc.lines, at + ("model",),
                                   f"no model '{waiver.model}' in models/ "
                                   f"(known: {', '.join(sorted(manifests)) or 'none'})"))
        if principals is None:
            continue
        if principals.by_id(waiver.approved_by) is None:
            issues.append(issue_at(doc.file, doc.lines, at + ("approved_by",),
                                   f"'{waiver.approved_by}' is not in principals.yaml (known: {known_people})"))
        elif manifest is not None and waiver.approved_by in manifest.model.authors:
            issues.append(issue_at(doc.file, doc.lines, at + ("approved_by",),
                                   f"'{waiver.approved_by}' is an author of {waiver.model}: "
                                   f"nobody may waive checks of their own model"))
    return issues


def _manifest_issues(loaded: _Loaded, path: Path, policies: dict[str, _Loaded], broken_tiers: set[str],
                     principals: Principals | None) -> list[ConfigIssue]:
    """Name matches the file, the tier has a policy, people exist, overrides only tighten."""
    manifest: ModelManifest = loaded.model
    doc = loaded.doc
    issues = []
    if manifest.name != path.stem:
        issues.append(issue_at(doc.file, doc.lines, ("name",), f"'{manifest.name}' does not match the file name "
                                                               f"{path.name} (a model lives in models/<name>.yaml)"))
    if principals is not None:
        known = ", ".join(sorted(p.id for p in principals.principals))
        people = [(("owner",), manifest.owner)] + [(("authors", i), a) for i, a in enumerate(manifest.authors)]
        for field_path, person in people:
            if principals.by_id(person) is None:
                issues.append(issue_at(doc.file, doc.lines, field_path,
                                       f"'{person}' is not in principals.yaml (known: {known})"))
    tier = policies.get(manifest.risk_tier)
    if tier is None:
        if manifest.risk_tier not in broken_tiers:
            issues.append(issue_at(doc.file, doc.lines, ("risk_tier",),
                                   f"no policy for tier '{manifest.risk_tier}' "
                                   f"(known: {', '.join(sorted(policies)) or 'none'})"))
        return issues
    try:
        effective = _tighten(tier.model, manifest.policy_overrides, source=doc.file, lines=doc.lines)
    except ConfigError as exc:
        return issues + exc.issues
    if principals is not None:
        issues += _quorum_issues(effective, principals, doc, excluded=set(manifest.authors),
                                 prefix=("policy_overrides",),
                                 overridden=set(manifest.policy_overrides.approvals.roles)
                                 if manifest.policy_overrides.approvals else set())
    return issues


def _quorum_issues(policy: Policy, principals: Principals, doc: YamlDocument, *, excluded: set[str],
                   prefix: ConfigPath, overridden: set[str] | None = None) -> list[ConfigIssue]:
    """Every required role is held by at least ``min`` people who may approve, or no run could finish.

    For a manifest, the model's authors are excluded (they may not approve their own model);
    the issue is put on the override that asks for the role, else on ``authors``.
    """
    issues = []
    for role, quorum in policy.approvals.roles.items():
        holders = [p.id for p in principals.principals if role in p.roles]
        eligible = [p for p in holders if p not in excluded]
        if len(eligible) >= quorum.min:
            continue
        who = f" ({', '.join(eligible)})" if eligible else ""
        message = (f"needs {quorum.min} approver(s) with role {role} but "
                   f"{len(eligible) or 'no'} principal(s){who} may approve with it: the quorum can never be met")
        if prefix and role not in (overridden or set()):
            if len(holders) < quorum.min:
                continue  # the tier policy itself cannot be met: reported on the policy file
            blocked = sorted(set(holders) & excluded)
            path: ConfigPath = ("authors",)
            message = (f"the {policy.tier} tier needs {quorum.min} {role} approver(s); with "
                       f"{', '.join(blocked) or 'nobody'} excluded as author(s), {len(eligible)} remain: "
                       f"the quorum can never be met")
        else:
            path = prefix + ("approvals", "roles", role, "min")
        issues.append(issue_at(doc.file, doc.lines, path, message))
    return issues


def load_config_dir(config_dir: Path | str) -> ConfigSet:
    """Load ``config_dir`` (policies/, models/, principals.yaml, waivers.yaml) and check the rules across files.

    Raises :class:`ConfigError` listing every problem in every file.
    """
    config, issues = _collect_dir(Path(config_dir))
    if config is None:
        raise ConfigError(issues)
    return config


# --------------------------------------------------------------------------- many paths


def _kind_of(path: Path, data: Any) -> str | None:
    """What a lone file is: by its place in the layout, else by its top-level keys."""
    if path.parent.name == "policies":
        return "policy"
    if path.parent.name == "models":
        return "manifest"
    if path.stem == "principals":
        return "principals"
    if path.stem == "waivers":
        return "waivers"
    if isinstance(data, dict):
        if "principals" in data:
            return "principals"
        if "waivers" in data:
            return "waivers"
        if "tier" in data or "gates" in data:
            return "policy"
        if "risk_tier" in data or "versions" in data:
            return "manifest"
    return None


def _layout_root(path: Path) -> Path | None:
    """The config directory a file sits in, if it sits in one (so cross-file rules apply too)."""
    root = path.parent.parent if path.parent.name in ("policies", "models") else path.parent
    if (root / "policies").is_dir() and (root / "principals.yaml").is_file():
        return root
    return None


def validate_paths(paths: list[Path]) -> list[ConfigIssue]:
    """Every issue in every given file or config directory (a directory means its configs/ layout).

    A file inside a config layout is also checked against its neighbours (tier policy,
    principals), but only its own issues are returned.
    """
    issues: list[ConfigIssue] = []
    for path in map(Path, paths):
        if path.is_dir():
            issues += _collect_dir(path)[1]
            continue
        root = _layout_root(path) if path.is_file() else None
        if root is not None:
            target = path.resolve()
            mine = [i for i in _collect_dir(root)[1] if Path(i.file).resolve() == target]
            issues += mine
            continue
        doc = read_yaml(path)
        if doc.data is None:
            issues += doc.issues
            continue
        kind = _kind_of(path, doc.data)
        if kind is None:
            issues.append(ConfigIssue(doc.file, 1, "", "cannot tell what this is: expected a policy (tier, gates), "
                                                       "a model manifest (name, risk_tier, versions) or principals"))
            continue
        issues += _load_file(path, kind, doc).issues
    unique: dict[ConfigIssue, None] = dict.fromkeys(issues)  # a file given twice reports once
    return list(unique)

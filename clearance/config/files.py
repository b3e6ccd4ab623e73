"""One config file checked on its own: a policy, a model manifest, principals, waivers, the regulatory map or
the price table.

Why: ``clearance validate some/file.yaml`` and the config directory both start from the same
per-file verdict. A file is read with line numbers (:mod:`~clearance.config.yaml_source`),
validated against its schema (errors worded by :mod:`~clearance.config.messages`), its gate ids
and gate configs against the gate registry, and then against the rules within one file that the
schema cannot express. Every problem of the file is collected, not just the first. Rules that
span files (a manifest's tier, its people, quorums, waivers) live in :mod:`~clearance.config.config_set`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clearance.config.issues import ConfigError, ConfigIssue, ConfigPath, dotted, issue_at
from clearance.config.limits import ConfigLimits
from clearance.config.messages import issues_from_validation
from clearance.config.partial import broken_fields, identity_clashes, salvage
from clearance.config.schema import ModelManifest, Policy, PriceTable, Principals, Waivers
from clearance.config.yaml_source import YamlDocument, read_yaml
from clearance.core.keys import production_key
from gates.base import GateConfigError, parse_gate_config, registered_gates
from gates.compliance_review.regulatory import RegulatoryMap

__all__ = ["load_manifest", "load_policy", "load_prices", "load_principals", "load_regulatory", "load_waivers"]

M = TypeVar("M", bound=BaseModel)
_KINDS: dict[str, type[BaseModel]] = {"policy": Policy, "manifest": ModelManifest, "principals": Principals,
                                      "waivers": Waivers, "regulatory": RegulatoryMap, "prices": PriceTable}


@dataclass
class _Loaded:
    """One config file after validation: the model (when valid) and what was wrong."""

    doc: YamlDocument
    model: Any = None
    parsed: Any = None  # the model as the schema accepted it, even if other rules then failed
    partial: Any = None  # when the schema did not: the model of the top-level fields that passed on their own
    broken: frozenset[str] = frozenset({""})  # top-level fields with an issue ("": the whole file)

    @property
    def issues(self) -> list[ConfigIssue]:
        return self.doc.issues

    @property
    def view(self) -> Any:
        """The model the rules across files read: whole, else salvaged (read only :meth:`intact` fields)."""
        return self.parsed if self.parsed is not None else self.partial

    def intact(self, *names: str) -> bool:
        """Whether these top-level fields of :attr:`view` can be relied on (no issue is under them)."""
        return self.view is not None and "" not in self.broken and not self.broken.intersection(names)


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


def _semantic_checks(model: BaseModel, doc: YamlDocument, broken: frozenset[str]) -> list[ConfigIssue]:
    """Rules within one file that the schema cannot express (each where the fields it reads are not
    ``broken``: the model may be the part of the file that passed, see :func:`~clearance.config.partial.salvage`)."""
    issues = []
    policy = model if isinstance(model, Policy) else None
    if policy is not None and "approvals" not in broken and policy.approvals.roles and not policy.approvals.channels:
        issues.append(issue_at(doc.file, doc.lines, ("approvals", "channels"),
                               "is empty, but approvals.roles needs sign-off: nobody could approve"))
    rollback = policy.rollback.approvals if policy is not None and "rollback" not in broken else None
    if rollback is not None and rollback.roles and not rollback.channels:
        issues.append(issue_at(doc.file, doc.lines, ("rollback", "approvals", "channels"),
                               "is empty, but rollback.approvals.roles needs sign-off: nobody could approve"))
    if isinstance(model, ModelManifest) and not broken & {"name", "versions"}:
        issues += _production_name_clashes(model, doc)
    return issues


def _production_name_clashes(manifest: ModelManifest, doc: YamlDocument) -> list[ConfigIssue]:
    """Two artifacts of one version that would land on the same production key.

    Promotion keeps only an artifact's file name (``<target>/<model>/<version>/<file>``, see
    :func:`clearance.core.keys.production_key`), so ``a/model.joblib`` and ``b/model.joblib`` pass the
    gates and then collide: the second copy is refused, and production holds half a version whose
    key no later run may overwrite. A key with no file name (ending in ``/``) would land on the folder.
    """
    issues = []
    for version, spec in manifest.versions.items():
        first: dict[str, int] = {}  # production key → index of the first artifact landing there
        for i, ref in enumerate(spec.artifacts):
            at = ("versions", version, "artifacts", i, "key")
            target = production_key(manifest.name, version, ref.key)
            if target.endswith("/"):
                issues.append(issue_at(doc.file, doc.lines, at, f"'{ref.key}' names no file (it ends with '/'): "
                                                                "promotion copies artifacts by their file name"))
                continue
            if target not in first:
                first[target] = i
                continue
            other = spec.artifacts[first[target]].key
            name = target.rsplit("/", 1)[1]
            issues.append(issue_at(doc.file, doc.lines, at,
                                   f"'{ref.key}' and '{other}' (versions.{version}.artifacts.{first[target]}.key) "
                                   f"have the same file name '{name}': promotion keeps only the file name, so both "
                                   f"would be copied to {manifest.name}/{version}/{name} under the promotion prefix "
                                   f"and the second would collide with the first; rename one"))
    return issues


_CLASH = re.compile(r"\w+ '.*' belongs to two principals")


_UNKNOWN_CONTROLS = re.compile(r"tag '(.*)' names unknown control\(s\): .*")


def _refine_regulatory(issues: list[ConfigIssue], doc: YamlDocument) -> list[ConfigIssue]:
    """Point "tag x names unknown control(s)" (a whole-file error) at each unknown control's line."""
    data: dict[str, Any] = doc.data if isinstance(doc.data, dict) else {}
    controls: dict[str, Any] = data["controls"] if isinstance(data.get("controls"), dict) else {}
    tags: dict[str, Any] = data["tags"] if isinstance(data.get("tags"), dict) else {}
    refined = []
    for issue in issues:
        match = _UNKNOWN_CONTROLS.fullmatch(issue.message)
        tag = match.group(1) if match and issue.field == "" else None
        listed = tags.get(tag) if tag is not None else None
        if not isinstance(listed, list):
            refined.append(issue)
            continue
        known = ", ".join(sorted(str(c) for c in controls)[:20]) or "none"
        for i, control in enumerate(listed):
            if isinstance(control, str) and control not in controls:
                refined.append(issue_at(doc.file, doc.lines, ("tags", tag, i),
                                        f"unknown control '{control}' (controls: {known})"))
    return refined


def _load_file(path: Path, kind: str, doc: YamlDocument | None = None, limits: ConfigLimits | None = None) -> _Loaded:
    """Parse (unless ``doc`` is given), validate against the schema and the gate registry, collect every issue."""
    doc = doc or read_yaml(path, limits)
    loaded = _Loaded(doc)
    if doc.data is None and doc.issues:
        return loaded
    model_cls = _KINDS[kind]
    failed: frozenset[str] = frozenset()
    try:
        loaded.model = model_cls.model_validate(doc.data)
    except ValidationError as exc:
        found = issues_from_validation(exc.errors(), model_cls, doc.file, doc.lines)
        if kind == "principals":  # every clash, at its second holder (the schema names only the first)
            found = [i for i in found if not (i.field == "" and _CLASH.fullmatch(i.message))] + identity_clashes(doc)
        elif kind == "regulatory":
            found = _refine_regulatory(found, doc)
        doc.issues.extend(found)
        loaded.partial, failed = salvage(model_cls, doc.data)
    gate_lists: dict[str, list[ConfigPath]] = {"policy": [("gates",), ("recertification", "gates")],
                                               "manifest": [("policy_overrides", "gates")]}
    for gates_at in gate_lists.get(kind, []):
        doc.issues.extend(_check_gates(doc, gates_at))
    if kind == "waivers":
        doc.issues.extend(_check_waiver_gates(doc))
    broken = broken_fields(doc.issues) | failed
    whole_or_part = loaded.model if loaded.model is not None else loaded.partial
    if whole_or_part is not None and "" not in broken:  # a schema error elsewhere does not hide these
        doc.issues.extend(_semantic_checks(whole_or_part, doc, broken))
    doc.issues.sort(key=_issue_order)
    loaded.parsed = loaded.model
    loaded.broken = broken_fields(doc.issues) | failed
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


def load_regulatory(path: Path | str) -> RegulatoryMap:
    """Load one ``regulatory.yaml`` (controls and the tags that select them); raises :class:`ConfigError`."""
    return _load_one(Path(path), "regulatory", RegulatoryMap)


def load_prices(path: Path | str) -> PriceTable:
    """Load one ``prices.yaml`` (instance type → USD per instance-hour); raises :class:`ConfigError`."""
    return _load_one(Path(path), "prices", PriceTable)

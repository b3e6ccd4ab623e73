"""A whole config directory, valid file by file and across files: the :class:`ConfigSet` a run reads.

Why: most mistakes worth catching span files (a manifest naming a tier with no policy, an
author who is not a principal, a quorum nobody can meet once authors are excluded, a waiver
approved by the model's own author); they are checked here, after each file passed
:mod:`~clearance.config.files`. All problems of all files are reported together.

Layout of a config directory::

    principals.yaml            who may initiate / approve, and their identity per channel
    policies/<tier>.yaml       one Policy per risk tier
    models/<name>.yaml         one ModelManifest per model
    waivers.yaml               optional: accepted failures of gate checks, each with an expiry
    regulatory.yaml            optional: the controls each regulatory tag selects, and their evidence
    prices.yaml                optional: instance type → USD per instance-hour, for the cost gate
    schemas/*.schema.json      generated JSON Schemas for editors (not read here)
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clearance.config.files import _issue_order, _load_file, _Loaded
from clearance.config.issues import ConfigError, ConfigIssue, ConfigPath, LineMap, display_path, issue_at
from clearance.config.limits import ConfigLimits, current_limits, size_text
from clearance.config.schema import ModelManifest, Policy, Principals
from clearance.config.tighten import effective_policy as _tighten
from clearance.config.yaml_source import YamlDocument
from gates.compliance_review.regulatory import RegulatoryMap
from gates.waivers import Waiver

__all__ = ["ConfigSet", "load_config_dir"]


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
    regulatory: RegulatoryMap | None = None  # regulatory.yaml, when the directory has one
    prices: dict[str, float] | None = None  # prices.yaml's table (instance type → USD/hour), when there is one

    def regulatory_map_json(self) -> dict[str, Any] | None:
        """The regulatory map as JSON (what the compliance_review gate reads as ``extra["regulatory_map"]``),
        or None when the config directory has no ``regulatory.yaml``."""
        return self.regulatory.model_dump(mode="json") if self.regulatory is not None else None

    def price_table_json(self) -> dict[str, float] | None:
        """The price table as JSON, ``{instance_type: USD per instance-hour}`` (what the cost gate reads as
        ``extra["price_table"]``), or None when the config directory has no ``prices.yaml``."""
        return dict(self.prices) if self.prices is not None else None

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


def _config_files(root: Path, limits: ConfigLimits) -> tuple[list[tuple[Path, int]], bool]:
    """The files a load reads, with their sizes (from the file system: nothing is opened), and whether there
    are more than ``limits.max_files`` (then the listing stops there: a folder of a million files is not
    listed to the end)."""
    found: list[tuple[Path, int]] = []
    for name in ("principals.yaml", "waivers.yaml", "regulatory.yaml", "prices.yaml"):
        path = root / name
        if path.is_file():
            found.append((path, path.stat().st_size))
    for folder in (root / "policies", root / "models"):
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith((".yaml", ".yml")) and entry.is_file():
                    found.append((Path(entry.path), entry.stat().st_size))
                    if len(found) > limits.max_files:
                        return found, True
    return found, False


def _size_issues(root: Path, limits: ConfigLimits) -> list[ConfigIssue]:
    """The config directory is over a limit: too many files, or too many bytes in all (checked before parsing)."""
    files, too_many = _config_files(root, limits)
    where = display_path(root)
    if too_many:
        return [ConfigIssue(where, None, "", f"holds more than {limits.max_files} config files (policies/, models/, "
                                             f"principals.yaml, waivers.yaml, regulatory.yaml): nothing was parsed "
                                             f"(raise CLEARANCE_CONFIG_MAX_FILES if it must hold this many)")]
    total = sum(size for _, size in files)
    if total <= limits.max_dir_bytes:
        return []
    largest = sorted(files, key=lambda item: -item[1])[:3]
    named = ", ".join(f"{display_path(path)} ({size_text(size)})" for path, size in largest)
    return [ConfigIssue(where, None, "", f"its {len(files)} config files total {size_text(total)} ({total} bytes), "
                                         f"over the {size_text(limits.max_dir_bytes)} limit for the config "
                                         f"directory: nothing was parsed; largest: {named} (raise "
                                         f"CLEARANCE_CONFIG_MAX_DIR_BYTES if it must be this big)")]


def _collect_dir(config_dir: Path, limits: ConfigLimits | None = None) -> tuple[ConfigSet | None, list[ConfigIssue]]:
    """Load a config directory and check the rules that span files (nothing is parsed when it is over a limit)."""
    root = _config_root(Path(config_dir))
    issues: list[ConfigIssue] = []
    if not root.is_dir():
        return None, [ConfigIssue(display_path(root), None, "", "not a directory")]
    limits = limits or current_limits()
    too_big = _size_issues(root, limits)
    if too_big:
        return None, too_big

    people = _load_file(root / "principals.yaml", "principals", limits=limits)
    issues += people.issues
    principals: Principals | None = people.model

    policies: dict[str, _Loaded] = {}
    broken_tiers: set[str] = set()  # policy files that exist but failed: don't cascade "no policy"
    if not (root / "policies").is_dir():
        issues.append(ConfigIssue(display_path(root / "policies"), None, "",
                                  "directory not found (one policies/<tier>.yaml per risk tier)"))
    else:
        for path in _yaml_files(root / "policies"):
            loaded = _load_file(path, "policy", limits=limits)
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
                if policy.rollback.approvals is not None:  # a rollback sign-off nobody can give is as stuck
                    rollback = policy.model_copy(update={"approvals": policy.rollback.approvals})
                    issues += _quorum_issues(rollback, principals, loaded.doc, excluded=set(), prefix=("rollback",),
                                             overridden=set(policy.rollback.approvals.roles))
                issues += _escalation_issues(policy, principals, loaded.doc)

    manifests: dict[str, _Loaded] = {}
    broken_models: set[str] = set()  # manifest files that exist but failed: don't cascade "no model"
    models_dir = root / "models"
    for path in _yaml_files(models_dir) if models_dir.is_dir() else []:
        loaded = _load_file(path, "manifest", limits=limits)
        issues += loaded.issues
        if loaded.model is None:
            broken_models.add(path.stem)
            continue
        found = _manifest_issues(loaded, path, policies, broken_tiers, principals)
        issues += found
        if loaded.model.name in manifests:
            continue
        manifests[loaded.model.name] = loaded

    if principals is not None and not broken_tiers and not broken_models:
        issues += _unused_role_issues(people, policies, manifests)

    waivers: _Loaded | None = None
    if (root / "waivers.yaml").is_file():
        waivers = _load_file(root / "waivers.yaml", "waivers", limits=limits)
        found = list(waivers.issues)
        if waivers.parsed is not None:  # an unknown gate does not hide the other waivers' problems
            found += _waiver_issues(waivers, manifests, broken_models, principals)
        issues += sorted(found, key=_issue_order)

    regulatory: _Loaded | None = None
    if (root / "regulatory.yaml").is_file():
        regulatory = _load_file(root / "regulatory.yaml", "regulatory", limits=limits)
        issues += regulatory.issues
    issues += _tag_issues(policies, manifests, regulatory, display_path(root / "regulatory.yaml"))

    prices: _Loaded | None = None
    if (root / "prices.yaml").is_file():
        prices = _load_file(root / "prices.yaml", "prices", limits=limits)
        issues += prices.issues

    if issues or principals is None:
        return None, issues
    docs = [people.doc] + [x.doc for x in (*policies.values(), *manifests.values())]
    docs += [waivers.doc] if waivers else []
    docs += [regulatory.doc] if regulatory else []
    docs += [prices.doc] if prices else []
    files = {d.file: d.sha256 or "" for d in docs}
    config = ConfigSet(
        root=root,
        policies={tier: loaded.model for tier, loaded in policies.items()},
        manifests={name: loaded.model for name, loaded in manifests.items()},
        principals=principals,
        files=files,
        _lines={name: (loaded.doc.file, loaded.doc.lines) for name, loaded in manifests.items()},
        waivers=list(waivers.model.waivers) if waivers else [],
        regulatory=regulatory.model if regulatory else None,
        prices=dict(prices.model.prices) if prices else None,
    )
    return config, []


def _gate_tag_paths(data: Any, gates_at: ConfigPath) -> list[tuple[ConfigPath, Any]]:
    """``(path, tag)`` of every tag in the ``regulatory.tags`` of a compliance_review entry under ``gates_at``."""
    items = data
    for part in gates_at:
        items = items.get(part) if isinstance(items, dict) else None
    found: list[tuple[ConfigPath, Any]] = []
    for i, spec in enumerate(items if isinstance(items, list) else []):
        if not isinstance(spec, dict) or spec.get("id") != "compliance_review":
            continue
        config = spec.get("config")
        section = config.get("regulatory") if isinstance(config, dict) else None
        tags = section.get("tags") if isinstance(section, dict) else None
        found += [(gates_at + (i, "config", "regulatory", "tags", j), tag)
                  for j, tag in enumerate(tags if isinstance(tags, list) else [])]
    return found


def _tag_issues(policies: dict[str, _Loaded], manifests: dict[str, _Loaded], regulatory: _Loaded | None,
                mapping_file: str) -> list[ConfigIssue]:
    """Every regulatory tag of a policy, a manifest or a compliance_review config is one regulatory.yaml knows.

    Without a ``regulatory.yaml`` no tag can be known (the gate would fail each); with a broken one nothing is
    said here (its own issues are reported).
    """
    if regulatory is not None and regulatory.model is None:
        return []
    known: dict[str, Any] = regulatory.model.tags if regulatory is not None else {}
    shown = ", ".join(sorted(known)) or "none"
    issues = []
    for loaded, gates_at in [(x, ("gates",)) for x in policies.values()] + \
                            [(x, ("policy_overrides", "gates")) for x in manifests.values()]:
        doc = loaded.doc
        tags = doc.data.get("regulatory_tags") if isinstance(doc.data, dict) else None
        found: list[tuple[ConfigPath, Any]] = [
            (("regulatory_tags", i), tag) for i, tag in enumerate(tags if isinstance(tags, list) else [])]
        found += _gate_tag_paths(doc.data, gates_at)
        for path, tag in found:
            if not isinstance(tag, str) or tag in known:
                continue
            why = (f"unknown regulatory tag '{tag}' ({mapping_file} knows: {shown})" if regulatory is not None
                   else f"regulatory tag '{tag}' but there is no {mapping_file} to say which controls it selects")
            issues.append(issue_at(doc.file, doc.lines, path, why))
    return issues


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


def _roles_asked_for(policy: Policy | None) -> set[str]:
    """Every role a policy (or a manifest's overrides, as a partial policy) gives meaning to."""
    if policy is None:
        return set()
    asked = set(policy.approvals.roles) | set(policy.rollback.emergency_roles)
    if policy.rollback.approvals is not None:
        asked |= set(policy.rollback.approvals.roles)
    return asked


def _unused_role_issues(people: _Loaded, policies: dict[str, _Loaded], manifests: dict[str, _Loaded]
                        ) -> list[ConfigIssue]:
    """A principal's role that no policy or manifest asks for but that is one letter or two from one that is: a
    typo (``securty``) that would leave the person unable to approve anything, found here rather than when a
    sign-off can never close. A role near none in use is kept for later and left alone."""
    asked: set[str] = set()
    for loaded in policies.values():
        asked |= _roles_asked_for(loaded.model)
    for loaded in manifests.values():
        overrides = loaded.model.policy_overrides.approvals if loaded.model else None
        asked |= set(overrides.roles) if overrides else set()
    issues = []
    for i, person in enumerate(people.model.principals if people.model else []):
        for j, role in enumerate(person.roles):
            if role in asked:
                continue
            close = difflib.get_close_matches(role, sorted(asked), n=1, cutoff=0.75)
            if not close:
                continue  # a role kept for later (or for waivers' approvers) is not a mistake
            issues.append(issue_at(people.doc.file, people.doc.lines, ("principals", i, "roles", j),
                                   f"role '{role}' is asked for by no policy or manifest: did you mean "
                                   f"'{close[0]}'? (roles in use: {', '.join(sorted(asked))})"))
    return issues


def _escalation_issues(policy: Policy, principals: Principals, doc: YamlDocument) -> list[ConfigIssue]:
    """Every principal a sign-off escalates to exists (a typo would escalate to nobody)."""
    known = ", ".join(sorted(p.id for p in principals.principals))
    issues = []
    for where, approvals in (("approvals",), policy.approvals), (("rollback", "approvals"), policy.rollback.approvals):
        for i, person in enumerate(approvals.reminders.escalate_to if approvals else []):
            if principals.by_id(person) is None:
                issues.append(issue_at(doc.file, doc.lines, (*where, "reminders", "escalate_to", i),
                                       f"'{person}' is not in principals.yaml (known: {known})"))
    return issues


def load_config_dir(config_dir: Path | str, limits: ConfigLimits | None = None) -> ConfigSet:
    """Load ``config_dir`` (policies/, models/, principals.yaml, waivers.yaml) and check the rules across files.

    Raises :class:`ConfigError` listing every problem in every file. ``limits`` (default: the settings')
    bound what is read: see :mod:`clearance.config.limits`.
    """
    config, issues = _collect_dir(Path(config_dir), limits)
    if config is None:
        raise ConfigError(issues)
    return config

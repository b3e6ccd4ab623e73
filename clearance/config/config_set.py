"""A whole config directory, valid file by file and across files: the :class:`ConfigSet` a run reads.

Why: most mistakes worth catching span files (a manifest naming a tier with no policy, an
author who is not a principal, a quorum nobody can meet once authors are excluded, a waiver
approved by the model's own author); they are checked here, after each file went through
:mod:`~clearance.config.files`. All problems of all files are reported together: a file that failed its
schema still takes part with the fields (principals.yaml: the entries) that passed
(:mod:`~clearance.config.partial`), so one mistake does not hide the others; a rule whose inputs are
broken says nothing rather than something that is only a consequence.

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

from pydantic import ValidationError

from clearance.config.files import _issue_order, _load_file, _Loaded
from clearance.config.issues import ConfigError, ConfigIssue, ConfigPath, LineMap, display_path, dotted, issue_at
from clearance.config.limits import ConfigLimits, current_limits, size_text
from clearance.config.partial import People, asked_roles, people_of
from clearance.config.schema import ApprovalPolicy, ModelManifest, Policy, Principals
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

    people_file = _load_file(root / "principals.yaml", "principals", limits=limits)
    issues += people_file.issues
    people = people_of(people_file.doc, people_file.parsed)  # what of it holds, even if some entries are broken

    asked: set[str] | None = set()  # the roles policies and manifests ask for (None: a file cannot say)
    policies: dict[str, _Loaded] = {}
    broken_tiers: set[str] = set()  # policy files whose tier cannot be read: don't cascade "no policy"
    if not (root / "policies").is_dir():
        issues.append(ConfigIssue(display_path(root / "policies"), None, "",
                                  "directory not found (one policies/<tier>.yaml per risk tier)"))
    else:
        for path in _yaml_files(root / "policies"):
            loaded = _load_file(path, "policy", limits=limits)
            issues += loaded.issues
            asked = _also(asked, asked_roles(loaded.doc.data, _POLICY_ROLES))
            issues += _policy_issues(loaded, path, people)
            if not loaded.intact("tier"):
                broken_tiers.add(path.stem)
                continue
            policies.setdefault(loaded.view.tier, loaded)

    manifests: dict[str, _Loaded] = {}
    broken_models: set[str] = set()  # manifest files whose name cannot be read: don't cascade "no model"
    models_dir = root / "models"
    for path in _yaml_files(models_dir) if models_dir.is_dir() else []:
        loaded = _load_file(path, "manifest", limits=limits)
        issues += loaded.issues
        asked = _also(asked, asked_roles(loaded.doc.data, [("policy_overrides", "approvals", "roles")]))
        if not loaded.intact("name"):
            broken_models.add(path.stem)
            continue
        issues += _manifest_issues(loaded, path, policies, broken_tiers, people)
        manifests.setdefault(loaded.view.name, loaded)

    if people is not None and asked is not None:
        issues += _unused_role_issues(people_file.doc, people, asked)

    waivers: _Loaded | None = None
    if (root / "waivers.yaml").is_file():
        waivers = _load_file(root / "waivers.yaml", "waivers", limits=limits)
        found = list(waivers.issues)
        found += _waiver_issues(waivers, manifests, broken_models, people)
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

    principals = people.model if people is not None else None
    if issues or principals is None:
        return None, issues
    docs = [people_file.doc] + [x.doc for x in (*policies.values(), *manifests.values())]
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
        reported = {issue.field for issue in doc.issues}  # a tag the schema refused is not also "unknown"
        for path, tag in found:
            if not isinstance(tag, str) or tag in known or dotted(path) in reported:
                continue
            why = (f"unknown regulatory tag '{tag}' ({mapping_file} knows: {shown})" if regulatory is not None
                   else f"regulatory tag '{tag}' but there is no {mapping_file} to say which controls it selects")
            issues.append(issue_at(doc.file, doc.lines, path, why))
    return issues


def _waiver_issues(loaded: _Loaded, manifests: dict[str, _Loaded], broken_models: set[str],
                   people: People | None) -> list[ConfigIssue]:
    """Each waiver is for a known model and approved by a known principal who did not author that model (each
    waiver that is valid on its own: one broken waiver does not hide the others' problems)."""
    doc = loaded.doc
    items = doc.data.get("waivers") if isinstance(doc.data, dict) and "" not in loaded.broken else None
    issues = []
    for i, raw in enumerate(items if isinstance(items, list) else []):
        try:
            waiver = Waiver.model_validate(raw)
        except (ValidationError, ValueError, TypeError):
            continue  # its own issues are reported
        at = ("waivers", i)
        manifest = manifests.get(waiver.model)
        if manifest is None and waiver.model not in broken_models:
            issues.append(issue_at(doc.file, doc.lines, at + ("model",),
                                   f"no model '{waiver.model}' in models/ "
                                   f"(known: {', '.join(sorted(manifests)) or 'none'})"))
        if people is None:
            continue
        if people.lacks(waiver.approved_by):
            issues.append(issue_at(doc.file, doc.lines, at + ("approved_by",),
                                   f"'{waiver.approved_by}' is not in principals.yaml (known: {people.known()})"))
        elif manifest is not None and manifest.intact("authors") and waiver.approved_by in manifest.view.authors:
            issues.append(issue_at(doc.file, doc.lines, at + ("approved_by",),
                                   f"'{waiver.approved_by}' is an author of {waiver.model}: "
                                   f"nobody may waive checks of their own model"))
    return issues


_POLICY_ROLES: list[ConfigPath] = [("approvals", "roles"), ("rollback", "approvals", "roles"),
                                   ("rollback", "emergency_roles")]


def _also(asked: set[str] | None, more: set[str] | None) -> set[str] | None:
    return None if asked is None or more is None else asked | more


def _policy_issues(loaded: _Loaded, path: Path, people: People | None) -> list[ConfigIssue]:
    """Tier matches the file name; every quorum can be met and every escalation reaches a principal (each
    rule where the fields it reads are intact)."""
    if not loaded.intact():
        return []
    policy: Policy = loaded.view
    doc = loaded.doc
    issues = []
    if loaded.intact("tier") and policy.tier != path.stem:
        issues.append(issue_at(doc.file, doc.lines, ("tier",), f"'{policy.tier}' does not match the file name "
                                                               f"{path.name} (a policy lives in policies/<tier>.yaml)"))
    if people is None:
        return issues
    if loaded.intact("approvals"):
        issues += _quorum_issues(policy, people, doc, excluded=set(), prefix=())
        issues += _escalation_issues(("approvals",), policy.approvals, people, doc)
    if loaded.intact("rollback") and policy.rollback.approvals is not None:  # a rollback nobody can sign is stuck
        rollback = policy.model_copy(update={"approvals": policy.rollback.approvals})
        issues += _quorum_issues(rollback, people, doc, excluded=set(), prefix=("rollback",),
                                 overridden=set(policy.rollback.approvals.roles))
        issues += _escalation_issues(("rollback", "approvals"), policy.rollback.approvals, people, doc)
    return issues


def _manifest_issues(loaded: _Loaded, path: Path, policies: dict[str, _Loaded], broken_tiers: set[str],
                     people: People | None) -> list[ConfigIssue]:
    """Name matches the file, the tier has a policy, people exist, overrides only tighten (each rule where the
    fields it reads, of the manifest and of its tier's policy, are intact)."""
    manifest: ModelManifest = loaded.view
    doc = loaded.doc
    issues = []
    if manifest.name != path.stem:
        issues.append(issue_at(doc.file, doc.lines, ("name",), f"'{manifest.name}' does not match the file name "
                                                               f"{path.name} (a model lives in models/<name>.yaml)"))
    if people is not None:
        named: list[tuple[ConfigPath, str]] = [(("owner",), manifest.owner)] if loaded.intact("owner") else []
        named += [(("authors", i), a) for i, a in enumerate(manifest.authors)] if loaded.intact("authors") else []
        for field_path, person in named:
            if people.lacks(person):
                issues.append(issue_at(doc.file, doc.lines, field_path,
                                       f"'{person}' is not in principals.yaml (known: {people.known()})"))
    if not loaded.intact("risk_tier"):
        return issues
    tier = policies.get(manifest.risk_tier)
    if tier is None:
        if manifest.risk_tier not in broken_tiers:
            issues.append(issue_at(doc.file, doc.lines, ("risk_tier",),
                                   f"no policy for tier '{manifest.risk_tier}' "
                                   f"(known: {', '.join(sorted(policies)) or 'none'})"))
        return issues
    if not loaded.intact("policy_overrides") or not tier.intact("gates", "on_warn", "approvals"):
        return issues  # what the overrides would tighten, or the overrides themselves, have their own issues
    try:
        effective = _tighten(tier.view, manifest.policy_overrides, source=doc.file, lines=doc.lines)
    except ConfigError as exc:
        return issues + exc.issues
    if people is not None and loaded.intact("authors"):
        issues += _quorum_issues(effective, people, doc, excluded=set(manifest.authors),
                                 prefix=("policy_overrides",),
                                 overridden=set(manifest.policy_overrides.approvals.roles)
                                 if manifest.policy_overrides.approvals else set())
    return issues


def _quorum_issues(policy: Policy, people: People, doc: YamlDocument, *, excluded: set[str],
                   prefix: ConfigPath, overridden: set[str] | None = None) -> list[ConfigIssue]:
    """Every required role is held by at least ``min`` people who may approve, or no run could finish.

    For a manifest, the model's authors are excluded (they may not approve their own model);
    the issue is put on the override that asks for the role, else on ``authors``. A broken entry of
    principals.yaml counts as holding the roles it might hold (:class:`~clearance.config.partial.People`).
    """
    issues = []
    for role, quorum in policy.approvals.roles.items():
        holders = people.holders(role)
        eligible = [p.label for p in holders if p.id is None or p.id not in excluded]
        if len(eligible) >= quorum.min:
            continue
        who = f" ({', '.join(eligible)})" if eligible else ""
        message = (f"needs {quorum.min} approver(s) with role {role} but "
                   f"{len(eligible) or 'no'} principal(s){who} may approve with it: the quorum can never be met")
        if prefix and role not in (overridden or set()):
            if len(holders) < quorum.min:
                continue  # the tier policy itself cannot be met: reported on the policy file
            blocked = sorted({p.id for p in holders if p.id is not None} & excluded)
            path: ConfigPath = ("authors",)
            message = (f"the {policy.tier} tier needs {quorum.min} {role} approver(s); with "
                       f"{', '.join(blocked) or 'nobody'} excluded as author(s), {len(eligible)} remain: "
                       f"the quorum can never be met")
        else:
            path = prefix + ("approvals", "roles", role, "min")
        issues.append(issue_at(doc.file, doc.lines, path, message))
    return issues


def _unused_role_issues(doc: YamlDocument, people: People, asked: set[str]) -> list[ConfigIssue]:
    """A principal's role that no policy or manifest asks for but that is one letter or two from one that is: a
    typo (``securty``) that would leave the person unable to approve anything, found here rather than when a
    sign-off can never close. A role near none in use is kept for later and left alone. ``asked`` is read from
    the YAML of every policy and manifest, broken or not (a broken one's roles still count as asked for)."""
    issues = []
    for i, person in people.valid:
        for j, role in enumerate(person.roles):
            if role in asked:
                continue
            close = difflib.get_close_matches(role, sorted(asked), n=1, cutoff=0.75)
            if not close:
                continue  # a role kept for later (or for waivers' approvers) is not a mistake
            issues.append(issue_at(doc.file, doc.lines, ("principals", i, "roles", j),
                                   f"role '{role}' is asked for by no policy or manifest: did you mean "
                                   f"'{close[0]}'? (roles in use: {', '.join(sorted(asked))})"))
    return issues


def _escalation_issues(where: ConfigPath, approvals: ApprovalPolicy, people: People, doc: YamlDocument
                       ) -> list[ConfigIssue]:
    """Every principal a sign-off escalates to exists (a typo would escalate to nobody)."""
    issues = []
    for i, person in enumerate(approvals.reminders.escalate_to):
        if people.lacks(person):
            issues.append(issue_at(doc.file, doc.lines, (*where, "reminders", "escalate_to", i),
                                   f"'{person}' is not in principals.yaml (known: {people.known()})"))
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

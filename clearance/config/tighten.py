"""A manifest may tighten its tier's policy, never loosen it.

Rules (anything else a manifest tries is a :class:`ConfigError` at the offending line):

- gates: new gates may be added (appended after the policy's); policy gates cannot be removed
  (the override format has no way to say so). A policy gate's ``mode`` may go advisory → blocking.
- gate config: fields marked ``json_schema_extra={"tighten": "lower"}`` may only decrease,
  ``"higher"`` only increase, ``"subset"`` lists may only lose items, ``"superset"`` lists (things
  required or denied) may only gain items. ``None`` means "no limit",
  so setting a limit tightens and removing one loosens. Fields without a rule cannot be changed,
  since clearance cannot tell which direction is safer.
- ``on_warn``: continue → require_approval.
- approvals: roles may be added, a role's ``min`` only increases, channels only removed,
  ``timeout`` only shortened, ``timeout_outcome`` approve → reject; ``reminders`` may be the model's own
  (they only nudge people).

Only what a manifest sets explicitly is compared: a default it did not write loosens nothing.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Any

from pydantic import BaseModel

from clearance.config.issues import ConfigError, ConfigIssue, ConfigPath, LineMap, issue_at
from clearance.config.schema import (
    ApprovalPolicy,
    GateMode,
    GateSpec,
    OnWarn,
    Policy,
    PolicyOverrides,
    TimeoutOutcome,
)
from gates.base import GateConfigError, parse_gate_config, registered_gates

_ROOT: ConfigPath = ("policy_overrides",)


class _Report:
    """Collects loosenings with their line, worded against the tier they would loosen."""

    def __init__(self, source: str, lines: LineMap, tier: str) -> None:
        self.source, self.lines, self.tier = source, lines, tier
        self.issues: list[ConfigIssue] = []

    def add(self, path: ConfigPath, message: str) -> None:
        self.issues.append(issue_at(self.source, self.lines, _ROOT + path, message))

    def looser(self, path: ConfigPath, new: Any, old: Any) -> None:
        self.add(path, f"{fmt(new)} is looser than the {self.tier} tier's {fmt(old)}")


def effective_policy(policy: Policy, overrides: PolicyOverrides, *, source: str,
                     lines: LineMap | None = None) -> Policy:
    """The tier ``policy`` with a manifest's ``overrides`` applied, if they only tighten it.

    ``source`` names the manifest file in errors; ``lines`` (JSON path → line, from the loader)
    locates them. Raises :class:`ConfigError` listing every loosening, not just the first.
    """
    report = _Report(source, lines or {}, policy.tier)
    gates = _gates(policy, overrides, report)
    on_warn = policy.on_warn
    if overrides.on_warn is not None:
        if policy.on_warn is OnWarn.REQUIRE_APPROVAL and overrides.on_warn is OnWarn.CONTINUE:
            report.looser(("on_warn",), overrides.on_warn, policy.on_warn)
        else:
            on_warn = overrides.on_warn
    approvals = _approvals(policy.approvals, overrides.approvals, report)
    if report.issues:
        raise ConfigError(report.issues)
    # a copy: every field the overrides cannot touch (recertification, rollback, tags…) stays the tier's
    return policy.model_copy(update={"gates": gates, "on_warn": on_warn, "approvals": approvals})


# --------------------------------------------------------------------------- gates


def _gates(policy: Policy, overrides: PolicyOverrides, report: _Report) -> list[GateSpec]:
    result = list(policy.gates)
    index = {spec.id: i for i, spec in enumerate(policy.gates)}
    known = registered_gates()
    seen: set[str] = set()
    for j, spec in enumerate(overrides.gates):
        path: ConfigPath = ("gates", j)
        if spec.id in seen:
            report.add(path + ("id",), f"gate '{spec.id}' is listed twice")
            continue
        seen.add(spec.id)
        if spec.id not in known:
            report.add(path + ("id",), f"unknown gate '{spec.id}' (known: {', '.join(sorted(known)) or 'none'})")
            continue
        if spec.id not in index:  # an extra gate only adds scrutiny; its config just has to be valid
            if _parse(spec.id, spec.config, path, report) is not None:
                result.append(spec)
            continue
        i = index[spec.id]
        result[i] = _tighten_gate(policy.gates[i], spec, path, report)
    return result


def _tighten_gate(base: GateSpec, override: GateSpec, path: ConfigPath, report: _Report) -> GateSpec:
    mode = base.mode
    if "mode" in override.model_fields_set:
        if base.mode is GateMode.BLOCKING and override.mode is GateMode.ADVISORY:
            report.looser(path + ("mode",), override.mode, base.mode)
        else:
            mode = override.mode
    # Shallow merge: the manifest restates only the keys it tightens.
    merged = {**base.config, **override.config}
    old = _parse(base.id, base.config, path, report, where="policy")
    new = _parse(base.id, merged, path, report)
    if old is not None and new is not None:
        _compare(old, new, path + ("config",), report)
    return GateSpec(id=base.id, mode=mode, config=merged)


def _parse(gate_id: str, raw: dict[str, Any], path: ConfigPath, report: _Report,
           where: str = "manifest") -> BaseModel | None:
    try:
        return parse_gate_config(gate_id, raw)
    except GateConfigError as exc:
        prefix = f"the {report.tier} tier's config is invalid: " if where == "policy" else ""
        report.add(path + ("config",), prefix + str(exc))
        return None


def _compare(old: BaseModel, new: BaseModel, path: ConfigPath, report: _Report) -> None:
    """Field by field, by each field's ``tighten`` rule (see the module docstring)."""
    for name, info in type(old).model_fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        rule = extra.get("tighten")
        here = path + (name,)
        if rule == "lower":
            if after is None or (before is not None and after > before):
                report.looser(here, after, before)
        elif rule == "higher":
            if after is None or (before is not None and after < before):
                report.looser(here, after, before)
        elif rule == "subset":
            if before is None:
                continue  # no list in the tier means anything goes: any list restricts
            added = [item for item in (after or []) if item not in before] if after is not None else None
            if added is None:
                report.looser(here, after, before)
            elif added:
                report.add(here, f"adds {fmt(added)}; the {report.tier} tier allows only {fmt(before)}")
        elif rule == "superset":
            removed = [item for item in (before or []) if item not in (after or [])]
            if removed:
                report.add(here, f"removes {fmt(removed)}; the {report.tier} tier requires {fmt(before)}")
        elif isinstance(before, BaseModel) and isinstance(after, BaseModel) and type(before) is type(after):
            _compare(before, after, here, report)
        else:
            report.add(here, f"cannot be changed by a manifest (no tighten rule); "
                             f"the {report.tier} tier's value is {fmt(before)}")


# --------------------------------------------------------------------------- approvals


def _approvals(base: ApprovalPolicy, override: ApprovalPolicy | None, report: _Report) -> ApprovalPolicy:
    if override is None:
        return base
    given = override.model_fields_set
    path: ConfigPath = ("approvals",)
    roles = dict(base.roles)
    for role, quorum in override.roles.items() if "roles" in given else ():
        current = roles.get(role)
        if current is not None and "min" not in quorum.model_fields_set:
            continue  # restating a role without a min keeps the tier's quorum
        if current is not None and quorum.min < current.min:
            report.looser(path + ("roles", role, "min"), quorum.min, current.min)
        else:
            roles[role] = quorum
    channels = list(base.channels)
    if "channels" in given:
        added = [c for c in override.channels if c not in base.channels]
        if added:
            report.add(path + ("channels",), f"adds {fmt(added)}; the {report.tier} tier allows only "
                                             f"{fmt(base.channels)}")
        elif roles and not override.channels:
            report.add(path + ("channels",), "removes every channel, so nobody could approve")
        else:
            channels = list(override.channels)
    timeout = base.timeout
    if "timeout" in given:
        if override.timeout > base.timeout:
            report.looser(path + ("timeout",), override.timeout, base.timeout)
        else:
            timeout = override.timeout
    outcome = base.timeout_outcome
    if "timeout_outcome" in given:
        if base.timeout_outcome is TimeoutOutcome.REJECT and override.timeout_outcome is TimeoutOutcome.APPROVE:
            report.looser(path + ("timeout_outcome",), override.timeout_outcome, base.timeout_outcome)
        else:
            outcome = override.timeout_outcome
    assurance = base.assurance
    if "assurance" in given:
        if not override.assurance.at_least(base.assurance):
            report.looser(path + ("assurance",), override.assurance, base.assurance)
        else:
            assurance = override.assurance
    # reminders only nudge people (they never count a decision): a manifest may set its own
    reminders = override.reminders if "reminders" in given else base.reminders
    return base.model_copy(update={"roles": roles, "channels": channels, "timeout": timeout,
                                   "timeout_outcome": outcome, "assurance": assurance, "reminders": reminders})


# --------------------------------------------------------------------------- formatting

# No weeks: "14d" is as clear as "2w" and matches how deadlines are usually written.
_UNITS = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]


def fmt_duration(value: timedelta) -> str:
    """``timedelta(hours=24)`` → ``"24h"``: the way durations are written in the YAML."""
    seconds = value.total_seconds()
    for unit, size in _UNITS:
        # Hours read better than days up to 3 days ("48h" is how approval deadlines are usually said).
        if unit == "d" and seconds < 3 * 86400:
            continue
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def fmt(value: Any) -> str:
    """A config value as it would be written in YAML, for messages."""
    if value is None:
        return "null"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, timedelta):
        return fmt_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set)):
        return "[" + ", ".join(fmt(item) for item in value) + "]"
    return str(value)

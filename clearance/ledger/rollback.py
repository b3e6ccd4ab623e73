"""Rollback decisions, pure: which earlier versions may go live again, which one, and on whose authority.

A rollback target is a version the ledger records as having been live — a ``promoted`` or
``rolled-back`` entry (:data:`clearance.core.ledger_kinds.LIVE`) — whose certification was not revoked
since (a ``recertification-failed`` or ``lapsed`` entry about it after its last certification), other
than the version live now. Whether its production copies still verify is the store's to say
(tasks/rollback.py); what is refused, and why, is decided here, so the flow only orders the steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from clearance.config.schema import ApprovalPolicy, Principals, RollbackPolicy
from clearance.core.ledger_kinds import LIVE, LedgerKind
from clearance.ledger.chain import LedgerEntry

_LIVE = frozenset(kind.value for kind in LIVE)
#: Entries that (re)certify a version: ``certified_until`` is read from the newest of them.
_CERTIFYING = _LIVE | {LedgerKind.RECERTIFIED.value}
#: Entries that revoke a version's certification.
_REVOKING = frozenset({LedgerKind.RECERTIFICATION_FAILED.value, LedgerKind.LAPSED.value})


class Target(BaseModel):
    """An earlier certified version and what went live for it (its newest ``promoted``/``rolled-back`` entry)."""

    version: str
    production: dict[str, str] = Field(description="Production key → sha256, as that entry recorded it.")
    artifact_digest: str = ""
    certified_run: str = Field(description="The run whose entry made it live last.")
    certified_seq: int = Field(0, description="That entry's ledger sequence number.")
    certified_until: datetime | None = Field(None, description="Its last certification's end (None: not recorded).")


def _version(entry: LedgerEntry) -> str:
    return str(entry.payload.get("version") or "")


def _until(entry: LedgerEntry) -> datetime | None:
    value = entry.payload.get("certified_until")
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def certified_until_of(entries: Sequence[LedgerEntry], version: str) -> datetime | None:
    """The end of ``version``'s last certification: ``certified_until`` of its newest live or
    ``recertified`` entry that records one (``None`` when none does)."""
    for entry in reversed(entries):
        if entry.kind in _CERTIFYING and _version(entry) == version:
            until = _until(entry)
            if until is not None:
                return until
    return None


def revocation(entries: Sequence[LedgerEntry], version: str) -> LedgerEntry | None:
    """The entry that revoked ``version``'s certification after its last certification, if one did."""
    for entry in reversed(entries):
        if _version(entry) != version:
            continue
        if entry.kind in _CERTIFYING:
            return None
        if entry.kind in _REVOKING:
            return entry
    return None


def certified_targets(entries: Sequence[LedgerEntry], live_version: str | None) -> list[Target]:
    """Every version but ``live_version`` with a live entry and no revocation since, newest first."""
    newest: dict[str, LedgerEntry] = {}
    for entry in entries:
        if entry.kind in _LIVE and _version(entry) and isinstance(entry.payload.get("production"), dict):
            newest[_version(entry)] = entry
    targets = [
        Target(version=version, production={str(k): str(v) for k, v in dict(entry.payload["production"]).items()},
               artifact_digest=str(entry.payload.get("artifact_digest") or ""),
               certified_run=str(entry.payload.get("run") or ""), certified_seq=entry.seq,
               certified_until=certified_until_of(entries, version))
        for version, entry in newest.items()
        if version != live_version and revocation(entries, version) is None
    ]
    return sorted(targets, key=lambda t: t.certified_seq, reverse=True)


def choose_target(entries: Sequence[LedgerEntry], live_version: str | None, to_version: str | None,
                  problems: Mapping[str, Sequence[str]]) -> Target | str:
    """The version to roll back to, or why there is none (a refusal, said to the person who asked).

    ``problems``: version → why its production copies no longer verify, for the versions checked (a
    version not in it was not checked and is not chosen). With ``to_version`` that version is
    the only one considered; without, the newest target whose copies verify.
    """
    if live_version is None:
        return "nothing is live (no production pointer): there is nothing to roll back from"
    targets = certified_targets(entries, live_version)
    if to_version is not None:
        if to_version == live_version:
            return f"{to_version} is the live version: a rollback moves to an earlier certified version"
        revoked = revocation(entries, to_version)
        if revoked is not None and any(e.kind in _LIVE and _version(e) == to_version for e in entries):
            return (f"{to_version} is no longer certified: ledger entry {revoked.seq} ({revoked.kind}) revoked its "
                    "certification; promote it again instead")
        target = next((t for t in targets if t.version == to_version), None)
        if target is None:
            return (f"{to_version} was never certified: the ledger has no promoted or rolled-back entry for it "
                    "(only a version that went live can be rolled back to)")
        return _verified(target, problems) or _copy_refusal(target, problems)
    if not targets:
        return f"there is no earlier certified version than the live {live_version} to roll back to"
    for target in targets:
        if _verified(target, problems):
            return target
    checked = [t for t in targets if t.version in problems]
    return ("no earlier certified version has production copies that still verify: "
            + "; ".join(f"{t.version}: {', '.join(problems[t.version])}" for t in checked))


def _verified(target: Target, problems: Mapping[str, Sequence[str]]) -> Target | None:
    return target if target.version in problems and not problems[target.version] else None


def _copy_refusal(target: Target, problems: Mapping[str, Sequence[str]]) -> str:
    found = problems.get(target.version)
    if found is None:
        return f"the production copies of {target.version} were not checked"
    return f"the production copy of {target.version} no longer verifies: {'; '.join(found)}"


def copy_problem(key: str, expected: str, found: str | None) -> str | None:
    """Why one production object does not verify (``found``: its sha256, ``None`` when it is missing)."""
    if found is None:
        return f"{key} is missing"
    if found != expected:
        return f"{key} changed (sha256 {found[:12]}…, certified {expected[:12]}…)"
    return None


# --------------------------------------------------------------------------- authority


class Authority(BaseModel):
    """The sign-off a rollback needs: ``approvals``, unless ``closed_by`` says why none is needed."""

    approvals: ApprovalPolicy
    closed_by: str | None = Field(None, description="'policy: …' when no sign-off is needed, and why.")


def rollback_authority(rollback: RollbackPolicy, tier: ApprovalPolicy, principals: Principals, *,
                       initiator: str, verified: bool, automatic: bool, trigger_run: str | None) -> Authority:
    """Which sign-off the rollback policy asks for this rollback.

    An automatic rollback (a failed re-certification whose policy says ``on_failure: rollback``; the
    caller checked that, :func:`automatic_problem`) needs none: the policy is the authority. A
    *verified* initiator holding one of ``emergency_roles`` needs none. Else the rollback's own
    ``approvals`` (the tier's when unset); with no roles, none.
    """
    approvals = rollback.approvals or tier
    if automatic:
        return Authority(approvals=approvals, closed_by=f"policy: on_failure rollback after the failed "
                                                        f"re-certification run {trigger_run}")
    person = principals.by_id(initiator)
    held = sorted(set(person.roles) & set(rollback.emergency_roles)) if person is not None else []
    if held and verified:
        return Authority(approvals=approvals, closed_by=f"policy: emergency rollback by {initiator} (verified, "
                                                        f"role {held[0]})")
    if not approvals.roles:
        return Authority(approvals=approvals, closed_by="policy: no sign-off for a rollback")
    return Authority(approvals=approvals)


def automatic_problem(entries: Sequence[LedgerEntry], trigger_run: str | None, live_version: str | None, *,
                      policy_rolls_back: bool, subflow_of_trigger: bool) -> str | None:
    """Why an automatic rollback is not authorised, or ``None`` when it is.

    It must name the re-certification run that failed (``trigger_run``), the policy must say
    ``on_failure: rollback``, and that run must be seen: its ``recertification-failed`` entry about the
    live version in the ledger, or this rollback running as its subflow.
    """
    if not trigger_run:
        return "an automatic rollback must name the failed re-certification run (trigger_run)"
    if not policy_rolls_back:
        return "the policy's re-certification does not say on_failure: rollback"
    failed = any(e.kind == LedgerKind.RECERTIFICATION_FAILED.value and e.payload.get("run") == trigger_run
                 and _version(e) in ("", live_version) for e in entries)
    if failed or subflow_of_trigger:
        return None
    return (f"run {trigger_run} is not a failed re-certification of the live {live_version}: no "
            "recertification-failed entry of it in the ledger, and this rollback is not its subflow")

"""A production model's certification, derived from its ledger alone (pure: no store, no Prefect).

A version is certified from the entry that made it live or re-certified it until the
``certified_until`` that entry carries:

- ``promoted``: starts an interval of its version (no ``certified_until``: the tier did not
  re-certify then, so no expiry is known and ``until`` is ``None``); it ends the interval of the
  version it replaced (``replaced``);
- ``recertified``: a pass; ends the live interval (``renewed``) and starts the next one;
- ``recertification-failed``: ends the live interval only when it says ``lapsed`` (its
  ``on_failure`` was ``lapse`` or ``rollback``); a ``notify`` failure leaves it running;
- ``lapsed``: the certification expired with no pass (written once by the expiry sweep) — ends it;
- ``rolled-back``: ends the live interval (``rolled-back``) and starts one of the target version,
  with the ``certified_until`` the entry carries (else that version's last known one).

Entries are taken in sequence order (two entries with the same time are ordered by ``seq``). An
entry about a version that is not the live one by then (a re-certification that finished after a
newer promotion, a stale lapse) changes nothing, and a second lapse of an interval already ended
is ignored, so the derivation is idempotent under the duplicates a race could leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from clearance.core.ledger_kinds import LedgerKind
from clearance.ledger.chain import LedgerEntry

#: The entry kinds that shape a certification (anything else is ignored here).
CERTIFICATION_KINDS = frozenset({LedgerKind.PROMOTED.value, LedgerKind.RECERTIFIED.value,
                                 LedgerKind.RECERTIFICATION_FAILED.value, LedgerKind.LAPSED.value,
                                 LedgerKind.ROLLED_BACK.value})

EndReason = Literal["", "renewed", "lapsed", "recertification-failed", "replaced", "rolled-back"]
Status = Literal["valid", "lapsed", "uncertified"]


@dataclass(frozen=True)
class Interval:
    """One stretch of certification of one version: from ``start`` until ``until`` (or ``ended`` earlier)."""

    version: str
    #: The run that certified it (a promotion, a re-certification or a rollback).
    run_id: str
    start: datetime
    #: ``certified_until`` of the certifying entry (``None``: no expiry known).
    until: datetime | None
    #: When it ended before (or at) ``until`` by an entry; ``None`` while it is the live one.
    ended: datetime | None = None
    #: How it ended: renewed, lapsed, recertification-failed, replaced, rolled-back ("" while open).
    end_reason: EndReason = ""
    #: The kind of the entry that started it (promoted, recertified, rolled-back).
    source: str = LedgerKind.PROMOTED.value
    #: The ledger entry that started it.
    seq: int = 0

    @property
    def open(self) -> bool:
        return self.ended is None

    def expired(self, now: datetime) -> bool:
        """Past its ``certified_until`` (whether or not a lapse was recorded)."""
        return self.until is not None and self.until <= now


@dataclass(frozen=True)
class Rollback:
    """A ``rolled-back`` entry, as ``clearance status --model`` and ``history`` show it."""

    from_version: str
    to_version: str
    at: datetime
    by: str
    reason: str
    run_id: str
    automatic: bool
    trigger_run: str = ""
    seq: int = 0


@dataclass(frozen=True)
class CertificationState:
    """Whether the live version is certified now, and until when."""

    model: str
    version: str | None
    status: Status
    certified_until: datetime | None = None
    #: When the current interval started (the promotion, pass or rollback that certified it).
    since: datetime | None = None
    #: The run that certified the current interval (the ``about_run`` of its lapse).
    last_run: str | None = None
    #: A lapse of the current interval is in the ledger (a lapse by expiry alone is not, until the sweep).
    lapse_recorded: bool = False
    #: When the current interval ended by a lapse or a failed re-certification.
    lapsed_at: datetime | None = None


# --------------------------------------------------------------------------- deriving


def parse_moment(value: Any) -> datetime | None:
    """An ISO 8601 payload value as an aware datetime (naive ones are UTC); ``None`` for absent or unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _version(entry: LedgerEntry) -> str:
    return str(entry.payload.get("version") or "")


def _run(entry: LedgerEntry) -> str:
    return str(entry.payload.get("run") or "")


def _last_until(intervals: Sequence[Interval], version: str) -> datetime | None:
    return next((i.until for i in reversed(intervals) if i.version == version), None)


def certification_timeline(entries: Sequence[LedgerEntry]) -> list[Interval]:
    """Every certification interval of a model, oldest first (the last one open while it is live)."""
    intervals: list[Interval] = []
    current: int | None = None  # index of the live version's latest interval (open, or ended by a lapse)
    replaced_runs: set[str] = set()

    def end(at: datetime, reason: EndReason) -> None:
        if current is not None and intervals[current].open:
            intervals[current] = replace(intervals[current], ended=at, end_reason=reason)

    for entry in sorted(entries, key=lambda e: e.seq):
        kind, payload, version = entry.kind, entry.payload, _version(entry)
        if kind not in CERTIFICATION_KINDS or not version:
            continue
        live = intervals[current] if current is not None else None
        if kind == LedgerKind.PROMOTED.value:
            until = parse_moment(payload.get("certified_until"))
            if _run(entry) in replaced_runs:
                # recorded late (by recovery) for a run a later promotion already replaced: history, not live
                intervals.append(Interval(version, _run(entry), entry.at, until, ended=entry.at,
                                          end_reason="replaced", seq=entry.seq))
                continue
            if payload.get("replaces_run"):
                replaced_runs.add(str(payload["replaces_run"]))
            end(entry.at, "replaced")
            intervals.append(Interval(version, _run(entry), entry.at, until, seq=entry.seq))
            current = len(intervals) - 1
        elif kind == LedgerKind.ROLLED_BACK.value:
            until = parse_moment(payload.get("certified_until")) or _last_until(intervals, version)
            if live is not None:
                replaced_runs.add(live.run_id)
            end(entry.at, "rolled-back")
            intervals.append(Interval(version, _run(entry), entry.at, until, source=kind, seq=entry.seq))
            current = len(intervals) - 1
        elif live is None or live.version != version:
            continue  # about a version that is not live (any more): changes nothing
        elif kind == LedgerKind.RECERTIFIED.value:
            end(entry.at, "renewed")
            intervals.append(Interval(version, _run(entry), entry.at, parse_moment(payload.get("certified_until")),
                                      source=kind, seq=entry.seq))
            current = len(intervals) - 1
        elif kind == LedgerKind.RECERTIFICATION_FAILED.value:
            if payload.get("lapsed"):
                end(entry.at, "recertification-failed")
        elif kind == LedgerKind.LAPSED.value:
            lapsed_until = parse_moment(payload.get("certified_until"))
            if lapsed_until is not None and live.until is not None and lapsed_until < live.until:
                continue  # a lapse of an earlier certification, written after the renewal: stale
            end(entry.at, "lapsed")
    return intervals


def rollbacks(entries: Sequence[LedgerEntry]) -> list[Rollback]:
    """Every ``rolled-back`` entry (from → to, when, by whom, why), oldest first.

    Who and why come from the entry, else from the same run's ``rollback-requested``; the version
    rolled back from from the entry (``from_version``), else the version live before it.
    """
    ordered = sorted(entries, key=lambda e: e.seq)
    requested = {_run(e): e.payload for e in ordered if e.kind == LedgerKind.ROLLBACK_REQUESTED.value}
    found: list[Rollback] = []
    live = ""
    for entry in ordered:
        if entry.kind == LedgerKind.PROMOTED.value and _version(entry):
            live = _version(entry)
        if entry.kind != LedgerKind.ROLLED_BACK.value:
            continue
        payload, asked = entry.payload, requested.get(_run(entry), {})

        def pick(*names: str, payload: dict[str, Any] = payload, asked: dict[str, Any] = asked) -> str:
            return next((str(source[n]) for source in (payload, asked) for n in names if source.get(n)), "")

        found.append(Rollback(from_version=pick("from_version", "previous_version") or live,
                              to_version=_version(entry), at=entry.at, by=pick("initiator"),
                              reason=pick("reason"), run_id=_run(entry),
                              automatic=bool(payload.get("automatic", asked.get("automatic", False))),
                              trigger_run=pick("trigger_run"), seq=entry.seq))
        live = _version(entry)
    return found


def current_interval(intervals: Sequence[Interval], live_version: str | None) -> Interval | None:
    """The latest interval not ended by a successor (renewal, promotion, rollback), when it is of ``live_version``
    (the version the pointer names)."""
    if live_version is None:
        return None
    last = next((i for i in reversed(intervals) if i.end_reason in ("", "lapsed", "recertification-failed")), None)
    return last if last is not None and last.version == live_version else None


def certification_state(entries: Sequence[LedgerEntry], live_version: str | None, now: datetime,
                        model: str = "") -> CertificationState:
    """The certification of ``live_version`` at ``now``: ``valid``, ``lapsed`` (ended by a lapse or a failed
    re-certification, or past ``certified_until`` without a lapse recorded yet), or ``uncertified`` (not
    live, or no entry certified it)."""
    interval = current_interval(certification_timeline(entries), live_version)
    if interval is None:
        return CertificationState(model=model, version=live_version, status="uncertified")
    recorded = interval.end_reason in ("lapsed", "recertification-failed")
    status: Status = "lapsed" if recorded or interval.expired(now) else "valid"
    return CertificationState(model=model, version=live_version, status=status, certified_until=interval.until,
                              since=interval.start, last_run=interval.run_id, lapse_recorded=recorded,
                              lapsed_at=interval.ended if recorded else None)


def last_certified_until(entries: Sequence[LedgerEntry], version: str) -> datetime | None:
    """The ``certified_until`` of ``version``'s latest certification (what a rollback to it carries over)."""
    return _last_until(certification_timeline(entries), version)

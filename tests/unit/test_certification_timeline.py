"""Certification intervals and state, derived from hand-built ledger entries (clearance/ledger/certification.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clearance.core import keys
from clearance.ledger import LedgerEntry
from clearance.ledger.certification import (
    certification_state,
    certification_timeline,
    last_certified_until,
    rollbacks,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


class Ledger:
    """Entries built in order (seq 1, 2, …) at chosen times."""

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []

    def add(self, kind: str, at: datetime, **payload: Any) -> LedgerEntry:
        previous = self.entries[-1] if self.entries else None
        entry = LedgerEntry.next_after(previous, kind, payload, at=at)
        self.entries.append(entry)
        return entry


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_a_promotion_certifies_until_its_certified_until() -> None:
    ledger = Ledger()
    ledger.add("started", T0, run="r1", version="1.0")
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY))
    [interval] = certification_timeline(ledger.entries)
    assert (interval.version, interval.run_id, interval.until, interval.open) == ("1.0", "r1", T0 + 90 * DAY, True)
    state = certification_state(ledger.entries, "1.0", T0 + DAY, model="m")
    assert (state.status, state.certified_until, state.since, state.last_run) == ("valid", T0 + 90 * DAY, T0, "r1")
    # past certified_until with no lapse recorded yet: lapsed, not recorded (the sweep's job)
    late = certification_state(ledger.entries, "1.0", T0 + 90 * DAY, model="m")
    assert (late.status, late.lapse_recorded) == ("lapsed", False)


def test_a_promotion_without_certified_until_has_no_expiry() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0")
    state = certification_state(ledger.entries, "1.0", T0 + 1000 * DAY)
    assert (state.status, state.certified_until) == ("valid", None)


def test_nothing_live_or_nothing_recorded_is_uncertified() -> None:
    ledger = Ledger()
    assert certification_state(ledger.entries, None, T0).status == "uncertified"
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + DAY))
    assert certification_state(ledger.entries, "2.0", T0).status == "uncertified"  # pointer ahead of the ledger
    assert certification_state(ledger.entries, None, T0).status == "uncertified"


def test_a_pass_renews_and_a_lapse_ends() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY))
    ledger.add("gate", T0 + 80 * DAY, gate="data_check", status="pass")
    ledger.add("recertified", T0 + 80 * DAY, run="c1", version="1.0", certified_until=iso(T0 + 170 * DAY))
    ledger.add("lapsed", T0 + 171 * DAY, version="1.0", certified_until=iso(T0 + 170 * DAY), about_run="c1",
               reason="expired")
    first, second = certification_timeline(ledger.entries)
    assert (first.end_reason, first.ended) == ("renewed", T0 + 80 * DAY)
    assert (second.source, second.run_id, second.until, second.end_reason) == \
        ("recertified", "c1", T0 + 170 * DAY, "lapsed")
    state = certification_state(ledger.entries, "1.0", T0 + 171 * DAY)
    assert (state.status, state.lapse_recorded, state.lapsed_at, state.last_run) == \
        ("lapsed", True, T0 + 171 * DAY, "c1")
    # a pass after the lapse certifies it again
    ledger.add("recertified", T0 + 172 * DAY, run="c2", version="1.0", certified_until=iso(T0 + 262 * DAY))
    assert certification_state(ledger.entries, "1.0", T0 + 172 * DAY).status == "valid"
    assert len(certification_timeline(ledger.entries)) == 3


def test_a_second_lapse_changes_nothing() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + DAY))
    ledger.add("lapsed", T0 + 2 * DAY, version="1.0", certified_until=iso(T0 + DAY), about_run="r1")
    once = certification_timeline(ledger.entries)
    ledger.add("lapsed", T0 + 3 * DAY, version="1.0", certified_until=iso(T0 + DAY), about_run="r1")
    assert certification_timeline(ledger.entries) == once
    assert once[0].ended == T0 + 2 * DAY
    assert certification_state(ledger.entries, "1.0", T0 + 4 * DAY).lapsed_at == T0 + 2 * DAY


def test_a_stale_lapse_after_a_renewal_is_ignored() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + DAY))
    ledger.add("recertified", T0 + DAY, run="c1", version="1.0", certified_until=iso(T0 + 91 * DAY))
    ledger.add("lapsed", T0 + DAY, version="1.0", certified_until=iso(T0 + DAY), about_run="r1")
    assert certification_state(ledger.entries, "1.0", T0 + 2 * DAY).status == "valid"


def test_failed_recertification_lapses_only_when_it_says_so() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY))
    ledger.add("recertification-failed", T0 + DAY, run="c1", version="1.0", action="notify", lapsed=False,
               failed_gates=["data_check"], reason="drift")
    assert certification_state(ledger.entries, "1.0", T0 + 2 * DAY).status == "valid"
    ledger.add("recertification-failed", T0 + 2 * DAY, run="c2", version="1.0", action="lapse", lapsed=True,
               failed_gates=["data_check"], reason="drift")
    state = certification_state(ledger.entries, "1.0", T0 + 3 * DAY)
    assert (state.status, state.lapse_recorded, state.certified_until) == ("lapsed", True, T0 + 90 * DAY)
    assert certification_timeline(ledger.entries)[0].end_reason == "recertification-failed"


def test_ties_in_time_are_ordered_by_seq() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + DAY))
    ledger.add("lapsed", T0, version="1.0", certified_until=iso(T0 + DAY), about_run="r1")
    ledger.add("recertified", T0, run="c1", version="1.0", certified_until=iso(T0 + 9 * DAY))
    shuffled = list(reversed(ledger.entries))  # the input order does not matter, seq does
    intervals = certification_timeline(shuffled)
    assert [i.end_reason for i in intervals] == ["lapsed", ""]
    assert certification_state(shuffled, "1.0", T0).status == "valid"


def test_a_newer_promotion_replaces_and_out_of_order_entries_of_the_old_version_do_nothing() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY))
    ledger.add("promoted", T0 + DAY, run="r2", version="2.0", certified_until=iso(T0 + 91 * DAY), replaces_run="r1")
    # a re-certification of 1.0 that started before 2.0 went live and finished after
    ledger.add("recertified", T0 + 2 * DAY, run="c1", version="1.0", certified_until=iso(T0 + 200 * DAY))
    ledger.add("recertification-failed", T0 + 2 * DAY, run="c0", version="1.0", lapsed=True, action="lapse")
    ledger.add("lapsed", T0 + 2 * DAY, version="1.0", certified_until=iso(T0 + 90 * DAY))
    old, new = certification_timeline(ledger.entries)
    assert (old.version, old.end_reason, old.ended) == ("1.0", "replaced", T0 + DAY)
    assert (new.version, new.open, new.until) == ("2.0", True, T0 + 91 * DAY)
    state = certification_state(ledger.entries, "2.0", T0 + 3 * DAY)
    assert (state.status, state.certified_until) == ("valid", T0 + 91 * DAY)


def test_a_promotion_recorded_late_by_recovery_stays_history() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0 + DAY, run="r2", version="2.0", certified_until=iso(T0 + 91 * DAY), replaces_run="r1")
    ledger.add("promoted", T0 + 2 * DAY, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY), recovered=True)
    intervals = certification_timeline(ledger.entries)
    assert [(i.version, i.end_reason) for i in intervals] == [("2.0", ""), ("1.0", "replaced")]
    assert certification_state(ledger.entries, "2.0", T0 + 3 * DAY).status == "valid"


def test_a_rollback_ends_the_live_interval_and_carries_the_target_certification() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY))
    ledger.add("promoted", T0 + DAY, run="r2", version="2.0", certified_until=iso(T0 + 91 * DAY), replaces_run="r1")
    ledger.add("recertification-failed", T0 + 5 * DAY, run="c1", version="2.0", action="rollback", lapsed=True)
    ledger.add("rollback-requested", T0 + 5 * DAY, run="b1", version="1.0", from_version="2.0",
               initiator="clearance", reason="re-certification c1 failed", automatic=True, trigger_run="c1")
    ledger.add("rolling-back", T0 + 5 * DAY, run="b1", version="1.0")
    ledger.add("rolled-back", T0 + 5 * DAY, run="b1", version="1.0")  # no certified_until: carried over
    intervals = certification_timeline(ledger.entries)
    assert [(i.version, i.end_reason) for i in intervals] == \
        [("1.0", "replaced"), ("2.0", "recertification-failed"), ("1.0", "")]
    assert intervals[-1].until == T0 + 90 * DAY and intervals[-1].source == "rolled-back"
    state = certification_state(ledger.entries, "1.0", T0 + 6 * DAY)
    assert (state.status, state.certified_until, state.last_run) == ("valid", T0 + 90 * DAY, "b1")
    [back] = rollbacks(ledger.entries)
    assert (back.from_version, back.to_version, back.by, back.automatic, back.trigger_run) == \
        ("2.0", "1.0", "clearance", True, "c1")
    assert back.reason == "re-certification c1 failed"
    assert last_certified_until(ledger.entries, "1.0") == T0 + 90 * DAY
    assert last_certified_until(ledger.entries, "3.0") is None


def test_a_rollback_with_its_own_certified_until_and_without_from_version() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until=iso(T0 + 90 * DAY))
    ledger.add("promoted", T0 + DAY, run="r2", version="2.0", certified_until=iso(T0 + 91 * DAY))
    ledger.add("rolled-back", T0 + 2 * DAY, run="b1", version="1.0", certified_until=iso(T0 + 50 * DAY),
               initiator="sam", reason="bad outputs")
    assert certification_state(ledger.entries, "1.0", T0 + 51 * DAY).status == "lapsed"
    [back] = rollbacks(ledger.entries)
    assert (back.from_version, back.by, back.automatic) == ("2.0", "sam", False)


def test_naive_and_z_times_are_utc() -> None:
    ledger = Ledger()
    ledger.add("promoted", T0, run="r1", version="1.0", certified_until="2026-01-02T00:00:00Z")
    ledger.add("recertified", T0, run="c1", version="1.0", certified_until="2026-01-03T00:00:00")
    ledger.add("recertified", T0, run="c2", version="1.0", certified_until="not a time")
    intervals = certification_timeline(ledger.entries)
    assert intervals[0].until == T0 + DAY and intervals[1].until == T0 + 2 * DAY and intervals[2].until is None


def test_certification_key() -> None:
    assert keys.certification_key("churn") == "production/churn/CERTIFICATION.json"
    assert keys.certification_key("churn", "prod-eu") == "prod-eu/churn/CERTIFICATION.json"

"""Reminders and escalation of a sign-off nobody answers: when each is due, to whom, and sent only once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from clearance.approvals import ApprovalRecord, ApprovalRequest, Decision, Outcome, ReminderSent, Vote
from clearance.approvals.reminders import due_nudges, nudge_message
from clearance.config.schema import Channel, Principals, Reminders
from clearance.events import PromotionEvent
from tasks import reminders as sweep
from tasks.approvals_record import open_record, read_record, record_nudge, submit_decision
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

OPENED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DIGEST = "a" * 64
SERVICE = FileSigner(ed25519.Ed25519PrivateKey.generate())
PEOPLE = Principals.model_validate({"principals": [
    {"id": "dana", "roles": ["security"]},            # the initiator: excluded, never reminded
    {"id": "sam", "roles": ["security"]},
    {"id": "sol", "roles": ["security"]},
    {"id": "bea", "roles": ["business"]},
    {"id": "carl", "roles": ["compliance"]},          # holds no required role
    {"id": "olga", "roles": []},                      # the backup group
], "service_keys": [SERVICE.public_key.line]})
POLICY = Reminders(after=timedelta(hours=4), every=timedelta(hours=2), escalate_after=timedelta(hours=20),
                   escalate_to=["olga"])


def request(reminders: Reminders = POLICY, hours: int = 24) -> ApprovalRequest:
    return ApprovalRequest(run_id="run-1", model="churn", version="1.2.0", tier="high", artifact_digest=DIGEST,
                           evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                           excluded_principals=["dana"], initiator="dana", channels=list(Channel),
                           opened_at=OPENED, deadline=OPENED + timedelta(hours=hours), reminders=reminders)


def at(hours: float, seconds: int = 0) -> datetime:
    return OPENED + timedelta(hours=hours, seconds=seconds)


def approve(record: ApprovalRecord, who: str, role: str) -> ApprovalRecord:
    record.decisions.append(Decision(principal=who, channel=Channel.CLI, vote=Vote.APPROVE, roles=[role],
                                     artifact_digest=DIGEST, evidence_digest="e" * 64, at=at(1)))
    return record


def kinds(nudges) -> list[tuple[str, int]]:
    return [(n.kind, n.number) for n in nudges]


def test_nothing_before_the_first_reminder_is_due() -> None:
    assert due_nudges(ApprovalRecord(request=request()), PEOPLE, at(4, -1)) == []


def test_the_first_reminder_goes_to_the_eligible_people_still_needed() -> None:
    [nudge] = due_nudges(ApprovalRecord(request=request()), PEOPLE, at(4, 1))
    assert (nudge.kind, nudge.number, nudge.due) == ("reminder", 1, at(4))
    assert nudge.to == ["bea", "sam", "sol"]  # not dana (initiator), not carl (no required role)
    assert nudge.missing == {"security": 1, "business": 1}


def test_people_who_decided_and_roles_already_filled_are_not_reminded() -> None:
    record = approve(ApprovalRecord(request=request()), "sam", "security")
    [nudge] = due_nudges(record, PEOPLE, at(4, 1))
    assert nudge.to == ["bea"] and nudge.missing == {"business": 1}


def test_repeats_every_interval_and_never_the_same_one_twice() -> None:
    record = ApprovalRecord(request=request())
    assert kinds(due_nudges(record, PEOPLE, at(6, -1))) == [("reminder", 1)]
    record.reminders.append(_sent("reminder", 1, at(4)))
    assert due_nudges(record, PEOPLE, at(6, -1)) == []
    [second] = due_nudges(record, PEOPLE, at(6))
    assert (second.number, second.due) == (2, at(6))


def test_a_sweep_that_was_down_sends_only_the_latest_reminder_due() -> None:
    [nudge] = due_nudges(ApprovalRecord(request=request()), PEOPLE, at(11))
    assert (nudge.number, nudge.due) == (4, at(10))


def test_without_every_the_reminder_goes_once() -> None:
    record = ApprovalRecord(request=request(Reminders(after=timedelta(hours=1))))
    assert kinds(due_nudges(record, PEOPLE, at(5))) == [("reminder", 1)]
    record.reminders.append(_sent("reminder", 1, at(1)))
    assert due_nudges(record, PEOPLE, at(23)) == []


def test_escalation_goes_once_to_the_backup_group_and_names_who_did_not_answer() -> None:
    record = approve(ApprovalRecord(request=request()), "bea", "business")
    record.reminders += [_sent("reminder", n, at(4 + 2 * (n - 1))) for n in range(1, 10)]
    [escalation] = due_nudges(record, PEOPLE, at(20))
    assert (escalation.kind, escalation.number, escalation.to) == ("escalation", 1, ["olga"])
    assert escalation.waiting_on == ["sam", "sol"] and escalation.missing == {"security": 1}
    assert nudge_message(escalation) == "Not answered: sam, sol."
    record.reminders.append(_sent("escalation", 1, at(20)))
    assert due_nudges(record, PEOPLE, at(20, 1)) == []


def test_nothing_is_due_once_closed_or_past_the_deadline() -> None:
    for outcome in (Outcome.APPROVED, Outcome.REJECTED, Outcome.TIMED_OUT, Outcome.SUPERSEDED):
        assert due_nudges(ApprovalRecord(request=request(), outcome=outcome), PEOPLE, at(21)) == []
    assert due_nudges(ApprovalRecord(request=request(hours=3)), PEOPLE, at(5)) == []  # the deadline decides


def test_a_request_without_reminders_is_never_nudged() -> None:
    assert due_nudges(ApprovalRecord(request=request(Reminders())), PEOPLE, at(23)) == []


def test_records_written_before_reminders_existed_still_load() -> None:
    old = ApprovalRecord(request=request()).model_dump(mode="json")
    del old["reminders"], old["request"]["reminders"]
    record = ApprovalRecord.model_validate(old)
    assert record.reminders == [] and record.request.reminders == Reminders()


def test_record_nudge_is_the_dedupe_between_two_sweeps() -> None:
    store = MemoryStore()
    record = open_record(store, request())
    key = "evidence/churn/1.2.0/run-1/approvals.json"
    [nudge] = due_nudges(record, PEOPLE, at(4, 1))
    first = record_nudge(store, key, nudge, at(4, 1))
    assert first is not None and [(r.kind, r.number, r.to) for r in first.reminders] == [
        ("reminder", 1, ["bea", "sam", "sol"])]
    assert record_nudge(store, key, nudge, at(4, 2)) is None  # the other sweep lost: it sends nothing
    assert len(read_record(store, key)[0].reminders) == 1


def test_a_decision_keeps_the_reminders_sent() -> None:
    store = MemoryStore()
    record = open_record(store, request())
    key = "evidence/churn/1.2.0/run-1/approvals.json"
    [nudge] = due_nudges(record, PEOPLE, at(4, 1))
    record_nudge(store, key, nudge, at(4, 1))
    result = submit_decision(store, key, principal=PEOPLE.by_id("sam"), identity="os:sam", channel=Channel.CLI,
                             vote=Vote.APPROVE, artifact_digest=DIGEST, now=at(5), signer=SERVICE, principals=PEOPLE)
    assert result.accepted and len(read_record(store, key)[0].reminders) == 1


def test_the_sweep_records_tells_the_ledger_and_the_channels_once(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    open_record(store, request())
    key = "evidence/churn/1.2.0/run-1/approvals.json"
    monkeypatch.setattr(sweep, "record_key_for_run", lambda _store, run_id: key)
    ledger: list[tuple[str, str, dict[str, Any]]] = []
    events: list[PromotionEvent] = []

    class Entry:
        seq = 7

    def append(_store, model, kind, payload):
        ledger.append((model, kind.value, payload))
        return Entry()

    monkeypatch.setattr(sweep, "append_entry", append)
    def publish(event: PromotionEvent) -> list[str]:
        events.append(event)
        return []

    monkeypatch.setattr(sweep, "publish_event", publish)
    sent = sweep.send_due_reminders(store, now=at(4, 1), principals=PEOPLE, run_ids=["run-1"])
    assert [(s.kind, s.number, s.to, s.ledger_seq) for s in sent] == [("reminder", 1, ["bea", "sam", "sol"], 7)]
    assert sweep.send_due_reminders(store, now=at(4, 1), principals=PEOPLE, run_ids=["run-1"]) == []
    [(model, kind, payload)] = ledger
    assert (model, kind, payload["about_run"], payload["number"]) == ("churn", "reminded", "run-1", 1)
    assert "run" not in payload  # `run` only ever names the run writing the entry
    [event] = events
    assert (event.kind, event.mentions, event.run_id, event.status) == ("reminder", ["bea", "sam", "sol"], "run-1",
                                                                         "reminder-1")
    sent = sweep.send_due_reminders(store, now=at(20), principals=PEOPLE, run_ids=["run-1"])
    assert [(s.kind, s.to) for s in sent] == [("reminder", ["bea", "sam", "sol"]), ("escalation", ["olga"])]
    assert [e.kind for e in events[1:]] == ["reminder", "escalated"] and ledger[-1][1] == "escalated"


def _sent(kind: Literal["reminder", "escalation"], number: int, moment: datetime) -> ReminderSent:
    return ReminderSent(kind=kind, number=number, at=moment, to=["x"], missing={})

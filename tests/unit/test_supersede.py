"""Superseded requests: closed by compare-and-swap only while pending, and never reopened by anyone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from clearance.approvals import ApprovalRequest, Outcome, RefusalReason, Vote
from clearance.approvals.trust import trusted_record
from clearance.config.schema import Channel, Principals
from clearance.events import PromotionEvent
from tasks import supersede as module
from tasks.approvals_record import close_if_due, open_record, read_record, submit_decision, supersede
from tasks.prefect_runs import RunInfo
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

OPENED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DIGEST = "a" * 64
SERVICE = FileSigner(ed25519.Ed25519PrivateKey.generate())
PEOPLE = Principals.model_validate({"principals": [
    {"id": "dana", "roles": []}, {"id": "sam", "roles": ["security"]}, {"id": "bea", "roles": ["business"]},
], "service_keys": [SERVICE.public_key.line]})


def request(run_id: str = "run-old", version: str = "1.0.0", opened: datetime = OPENED) -> ApprovalRequest:
    return ApprovalRequest(run_id=run_id, model="churn", version=version, tier="high", artifact_digest=DIGEST,
                           evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                           excluded_principals=["dana"], initiator="dana", channels=list(Channel),
                           opened_at=opened, deadline=opened + timedelta(hours=1))


def key(run_id: str = "run-old", version: str = "1.0.0") -> str:
    return f"evidence/churn/{version}/{run_id}/approvals.json"


def decide(store: MemoryStore, who: str, at: datetime, vote: Vote = Vote.APPROVE):
    return submit_decision(store, key(), principal=PEOPLE.by_id(who), identity=f"os:{who}", channel=Channel.CLI,
                           vote=vote, artifact_digest=DIGEST, comment="no" if vote is Vote.REJECT else "",
                           now=at, signer=SERVICE, principals=PEOPLE)


def test_a_pending_request_is_superseded_once() -> None:
    store = MemoryStore()
    open_record(store, request())
    closed = supersede(store, key(), "1.1.0", "run-new", OPENED + timedelta(minutes=5))
    assert closed is not None and closed.outcome is Outcome.SUPERSEDED
    assert closed.closed_by == ["superseded by 1.1.0 (run run-new)"]
    assert closed.closed_at == OPENED + timedelta(minutes=5)
    assert supersede(store, key(), "1.2.0", "run-newer", OPENED + timedelta(minutes=6)) is None
    assert read_record(store, key())[0].closed_by == ["superseded by 1.1.0 (run run-new)"]


def test_a_decided_or_overdue_request_is_not_superseded() -> None:
    store = MemoryStore()
    open_record(store, request())
    decide(store, "sam", OPENED, Vote.REJECT)
    assert supersede(store, key(), "1.1.0", "run-new", OPENED + timedelta(minutes=5)) is None
    overdue = MemoryStore()
    open_record(overdue, request())
    assert supersede(overdue, key(), "1.1.0", "run-new", OPENED + timedelta(hours=2)) is None  # times out instead


def test_nothing_reopens_a_superseded_request() -> None:
    store = MemoryStore()
    open_record(store, request())
    decide(store, "sam", OPENED + timedelta(minutes=1))
    supersede(store, key(), "1.1.0", "run-new", OPENED + timedelta(minutes=5))
    late = decide(store, "bea", OPENED + timedelta(minutes=6))
    assert late.refusal is not None and late.refusal.reason is RefusalReason.REQUEST_CLOSED
    assert "superseded" in late.refusal.message
    assert close_if_due(store, key(), now=OPENED + timedelta(hours=2)).outcome is Outcome.SUPERSEDED
    stored = read_record(store, key())[0]
    assert stored.outcome is Outcome.SUPERSEDED
    trusted, problems = trusted_record(stored, request(), PEOPLE, [SERVICE.public_key], OPENED + timedelta(hours=2))
    assert problems == [] and trusted.outcome is Outcome.SUPERSEDED
    assert trusted.closed_by == ["superseded by 1.1.0 (run run-new)"]


@pytest.mark.parametrize(("other", "version", "older"), [
    ("1.0.0", "1.1.0", True), ("1.10.0", "1.9.0", False), ("1.1.0", "1.1.0", False), ("2.0.0rc1", "2.0.0", True),
])
def test_older_by_version(other: str, version: str, older: bool) -> None:
    assert module.is_older(other, OPENED, version, OPENED + timedelta(hours=1)) is older


def test_older_by_opening_time_when_a_version_is_not_pep440() -> None:
    assert module.is_older("blue", OPENED, "green", OPENED + timedelta(minutes=1))
    assert not module.is_older("blue", OPENED + timedelta(minutes=2), "green", OPENED + timedelta(minutes=1))


def test_supersede_older_closes_only_older_waiting_requests_of_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    records = {}
    for run_id, version, minute in (("run-old", "1.0.0", 0), ("run-new", "1.1.0", 1), ("run-newer", "1.2.0", 2)):
        open_record(store, request(run_id, version, OPENED + timedelta(minutes=minute)))
        records[run_id] = key(run_id, version)
    runs = [RunInfo(run_id=r, state=module.StateType.PAUSED, state_since=None, parameters={"model": "churn"})
            for r in ("run-old", "run-newer")]
    runs.append(RunInfo(run_id="run-other", state=module.StateType.PAUSED, state_since=None,
                        parameters={"model": "other"}))
    monkeypatch.setattr(module, "promotion_runs", lambda states: runs)
    monkeypatch.setattr(module, "record_key_for_run", lambda _store, run_id: records[run_id])
    woken: list[str] = []
    events: list[PromotionEvent] = []

    def wake(run_id: str, wait_seconds: float) -> bool:
        woken.append(run_id)
        return True

    def publish(event: PromotionEvent) -> list[str]:
        events.append(event)
        return []

    monkeypatch.setattr(module, "wake_run", wake)
    monkeypatch.setattr(module, "publish_event", publish)
    done = module.supersede_older(store, "churn", "1.1.0", "run-new", now=OPENED + timedelta(minutes=5))
    assert done == ["run-old"] and woken == ["run-old"]
    assert read_record(store, records["run-old"])[0].outcome is Outcome.SUPERSEDED
    assert read_record(store, records["run-newer"])[0].outcome is Outcome.PENDING
    [event] = events
    assert (event.kind, event.run_id, event.status) == ("closed", "run-old", "superseded")

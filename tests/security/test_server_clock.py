"""Finding 9: a deadline was judged by the approver's machine clock.

The approver controls their machine's clock, and the CLI runs the intake on that machine. Deadlines
are now judged by, and every decision timed with, the object store's clock (the ``Date`` of a request
to the S3 server): here the local clock is faked far off — in this process, and in a real CLI process —
and the real SeaweedFS decides.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

import pytest

import clearance.core.clock
from clearance.approvals import ApprovalRecord, ApprovalRequest, Outcome, RefusalReason, Vote
from clearance.config.schema import Channel, Principals
from clearance.core.digests import canonical_json
from clearance.core.keys import approvals_key, run_index_key
from tests.integration.promotion_kit import PRINCIPALS, REPO, cli_env, make_candidate

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "a" * 64
FAR = timedelta(days=30)

# The real CLI, in a process whose clearance clock (the one every module imports) is faked.
# After the command it prints what the intake's module would have read as "now", so the test can
# check the fake was in force where the decision was recorded.
FAKE_CLOCK_CLI = """
import sys
from datetime import datetime

import clearance.core.clock

fake = datetime.fromisoformat(sys.argv.pop(1))
clearance.core.clock.utcnow = lambda: fake
from clearance.app.cli import app

sys.argv[0] = "clearance"
try:
    app()
finally:
    import tasks.approvals_record
    print("local-clock:", tasks.approvals_record.utcnow().isoformat(), file=sys.stderr)
"""


def principals() -> Principals:
    return Principals.model_validate({"principals": PRINCIPALS})


_REAL_UTCNOW = clearance.core.clock.utcnow  # kept before any test fakes it


def fake_local_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Make this process's clearance clock say ``moment``, in every module that imported it."""
    import tasks.approval_intake
    import tasks.approvals_record
    import tasks.deadlines
    import tasks.signoff  # noqa: F401 — imported so that their bindings of utcnow are faked too

    def fake() -> datetime:
        return moment

    fake.fake_clock = True  # type: ignore[attr-defined]
    for module in list(sys.modules.values()):
        current = getattr(module, "__dict__", {}).get("utcnow")
        if current is _REAL_UTCNOW or getattr(current, "fake_clock", False):
            monkeypatch.setattr(module, "utcnow", fake)
    assert tasks.approvals_record.utcnow() == moment == clearance.core.clock.utcnow()


def open_request(store, *, deadline: datetime, model: str | None = None) -> ApprovalRequest:
    """An approvals record and its run index, as a run opens them (security + business, 1 each)."""
    request = ApprovalRequest(
        run_id=str(uuid.uuid4()), model=model or f"m-{uuid.uuid4().hex[:10]}", version="1.0.0", tier="high",
        artifact_digest=DIGEST, evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
        excluded_principals=["dana"], initiator="dana", channels=[Channel.CLI, Channel.PREFECT_UI],
        opened_at=deadline - timedelta(hours=1), deadline=deadline)
    from tasks.approvals_record import open_record

    open_record(store, request)
    key = approvals_key(request.model, request.version, request.run_id)
    store.put_if_absent(run_index_key(request.run_id), canonical_json({"run_id": request.run_id, "record": key}),
                        content_type="application/json")
    return request


#: How a decision after the deadline is refused: the deadline passed, or the intake first applied the
#: deadline to the record (closing it as timed out) and the request is closed.
LATE = {RefusalReason.DEADLINE_PASSED, RefusalReason.REQUEST_CLOSED}


def assert_closed_late_if_closed(record: ApprovalRecord, before: datetime, after: datetime) -> None:
    """A record the intake closed on the way closed as timed out, at the store's time."""
    if record.outcome.closed:
        assert record.outcome is Outcome.TIMED_OUT and record.closed_by == ["deadline"], record.outcome
        assert record.closed_at is not None and before <= record.closed_at <= after


def stored(store, request: ApprovalRequest) -> ApprovalRecord:
    key = approvals_key(request.model, request.version, request.run_id)
    return ApprovalRecord.model_validate_json(store.get_bytes(key)[0])


def decide(store, request: ApprovalRequest, who: str = "sam"):
    from tasks.approval_intake import receive_decision

    return receive_decision(store, request.run_id, principal=principals().by_id(who), identity=who,
                            channel=Channel.CLI, vote=Vote.APPROVE, comment="ok", artifact_digest=DIGEST)


# --------------------------------------------------------------------------- the store's clock itself


def test_the_store_clock_is_the_servers_date_read_fresh_each_time(store) -> None:
    import time

    calls = []
    head_bucket = store.client.head_bucket
    store.client.head_bucket = lambda **kw: calls.append(kw) or head_bucket(**kw)
    first = store.server_time()
    time.sleep(1.1)
    second = store.server_time()
    assert len(calls) == 2  # one request per reading: nothing cached that could go stale
    assert first.utcoffset() == timedelta(0) and first.microsecond == 0  # aware UTC, S3's 1-second Date
    assert second > first
    # SeaweedFS runs on this machine here, so its clock and the real one agree to within a few seconds.
    assert abs(second.timestamp() - time.time()) < 5


def test_faking_the_local_clock_does_not_move_the_store_clock(store, monkeypatch) -> None:
    before = store.server_time()
    fake_local_clock(monkeypatch, before - FAR)
    assert abs((store.server_time() - before).total_seconds()) < 5


# --------------------------------------------------------------------------- decisions in this process


def test_a_late_decision_is_refused_although_the_submitters_clock_says_it_is_early(store, monkeypatch) -> None:
    now = store.server_time()
    request = open_request(store, deadline=now - timedelta(minutes=5))
    fake_local_clock(monkeypatch, now - FAR)  # by the submitter's clock the deadline is a month away
    before = store.server_time()
    result = decide(store, request)
    after = store.server_time()
    assert not result.accepted and result.refusal is not None
    assert result.refusal.reason in LATE
    record = stored(store, request)
    assert record.decisions == [] and [r.reason for r in record.refusals] == [result.refusal.reason]
    assert before <= record.refusals[0].at <= after  # timed by the store, not by the faked clock
    assert_closed_late_if_closed(record, before, after)


def test_an_early_decision_counts_and_is_timed_by_the_store_although_the_submitters_clock_says_late(
        store, monkeypatch) -> None:
    now = store.server_time()
    request = open_request(store, deadline=now + timedelta(hours=1))
    fake_local_clock(monkeypatch, now + FAR)  # by the submitter's clock the deadline passed a month ago
    before = store.server_time()
    result = decide(store, request)
    after = store.server_time()
    assert result.accepted, result.refusal
    record = stored(store, request)
    assert [d.principal for d in record.decisions] == ["sam"] and record.outcome is Outcome.PENDING
    assert before <= record.decisions[0].at <= after


# --------------------------------------------------------------------------- the deadline's other readers


def test_the_sweep_closes_by_the_store_clock(store, monkeypatch) -> None:
    import tasks.deadlines

    now = store.server_time()
    late = open_request(store, deadline=now - timedelta(minutes=5))
    early = open_request(store, deadline=now + timedelta(hours=1))
    woken: list[str] = []
    monkeypatch.setattr(tasks.deadlines, "waiting_promotion_runs", lambda: [late.run_id, early.run_id])
    monkeypatch.setattr(tasks.deadlines, "wake_run", lambda run_id, wait_seconds=0: woken.append(run_id) or True)
    # The sweeper's clock is a month behind: by it nothing is due. By the store's clock one run is.
    fake_local_clock(monkeypatch, now - FAR)
    assert tasks.deadlines.expire_overdue(store) == [late.run_id] == woken
    closed = stored(store, late)
    assert closed.outcome is Outcome.TIMED_OUT and closed.closed_by == ["deadline"]
    assert now <= closed.closed_at <= store.server_time()
    # A sweeper whose clock is a month ahead closes nothing that is not due by the store's clock.
    fake_local_clock(monkeypatch, now + FAR)
    monkeypatch.setattr(tasks.deadlines, "waiting_promotion_runs", lambda: [early.run_id])  # the late one ended
    assert tasks.deadlines.expire_overdue(store) == [] and stored(store, early).outcome is Outcome.PENDING


def test_the_waiting_run_reads_the_record_by_the_store_clock(store, monkeypatch) -> None:
    import tasks.signoff

    monkeypatch.setattr(tasks.signoff, "store", lambda: store)
    now = store.server_time()
    late = open_request(store, deadline=now - timedelta(minutes=5))
    early = open_request(store, deadline=now + timedelta(hours=1))
    fake_local_clock(monkeypatch, now - FAR)
    assert tasks.signoff.refresh_record.fn(approvals_key(late.model, late.version, late.run_id), late,
                                           principals()).outcome is Outcome.TIMED_OUT
    fake_local_clock(monkeypatch, now + FAR)
    assert tasks.signoff.refresh_record.fn(approvals_key(early.model, early.version, early.run_id), early,
                                           principals()).outcome is Outcome.PENDING
    assert stored(store, early).outcome is Outcome.PENDING


# --------------------------------------------------------------------------- the CLI on a machine with a wrong clock


@pytest.fixture
def bucket_root(s3_service):
    """The whole bucket (the CLI reads the run index at the bucket's root)."""
    from clearance.settings import Settings
    from tasks.object_store import ObjectStore

    return ObjectStore.from_settings(Settings())


def cli_with_clock(candidate, user: str, clock: datetime, *args: str) -> subprocess.CompletedProcess:
    env = cli_env(candidate, user)
    env.pop("CLEARANCE_SSH_KEY", None)
    return subprocess.run([sys.executable, "-c", FAKE_CLOCK_CLI, clock.isoformat(), *args], env=env, cwd=REPO,
                          text=True, capture_output=True, timeout=120)


def test_the_cli_on_a_machine_whose_clock_is_wrong(bucket_root, tmp_path) -> None:
    cand = make_candidate(tmp_path, bucket_root)
    now = bucket_root.server_time()

    # Past the deadline by the store's clock; a month before it by the CLI machine's clock: refused.
    late = open_request(bucket_root, deadline=now - timedelta(minutes=5), model=cand.model)
    early_clock = now - FAR
    done = cli_with_clock(cand, "sam", early_clock, "approve", late.run_id, "--digest", DIGEST)
    assert done.returncode == 1 and re.search(r"deadline_passed|request_closed.*timed_out", done.stderr), done.stderr
    assert f"local-clock: {early_clock.isoformat()}" in done.stderr  # the fake was in force in that process
    record = stored(bucket_root, late)
    after = bucket_root.server_time()
    assert record.decisions == [] and [r.reason in LATE for r in record.refusals] == [True]
    assert now <= record.refusals[0].at <= after
    assert_closed_late_if_closed(record, now, after)

    # Before the deadline by the store's clock; a month after it by the CLI machine's clock: counted,
    # and recorded at the store's time.
    early = open_request(bucket_root, deadline=now + timedelta(hours=1), model=cand.model)
    late_clock = now + FAR
    done = cli_with_clock(cand, "sam", late_clock, "approve", early.run_id, "--digest", DIGEST)
    assert done.returncode == 0, done.stderr
    assert f"local-clock: {late_clock.isoformat()}" in done.stderr
    decision = stored(bucket_root, early).decisions[0]
    assert decision.principal == "sam" and decision.channel is Channel.CLI
    assert now <= decision.at <= bucket_root.server_time()

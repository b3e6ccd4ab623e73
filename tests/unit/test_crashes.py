"""The crash sweep's decisions on plain data: when a silent run is dead, how a crashed run is closed in the
ledger (once per attempt), which unfinished uploads are aborted. tests/faults/test_killed_worker.py runs
the whole sweep against real killed runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from prefect.client.schemas.objects import StateType

from clearance.core.ledger_kinds import TERMINAL, LedgerKind
from clearance.ledger import verify_chain
from tasks.crashes import abort_orphan_uploads, close_crashed_run, judge
from tasks.ledger import append_entry, read_ledger
from tasks.prefect_runs import RunInfo
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SIGNER = FileSigner(ed25519.Ed25519PrivateKey.generate())


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def running(since: datetime = T0, **extra) -> RunInfo:
    return RunInfo(run_id="r1", state=StateType.RUNNING, state_since=since, start_time=since,
                   parameters={"model": "m", "version": "1.0"}, **extra)


def test_crashed_is_a_terminal_ledger_kind() -> None:
    assert LedgerKind("crashed") is LedgerKind.CRASHED and LedgerKind.CRASHED.terminal
    assert LedgerKind.CRASHED in TERMINAL


def test_a_run_is_dead_only_when_silent_longer_than_the_bound() -> None:
    beats = [s(0), s(30), s(60)]
    assert not judge(running(), beats, s(60 + 119), crash_after=120, interval=30).dead
    verdict = judge(running(), beats, s(60 + 121), crash_after=120, interval=30)
    assert verdict.dead and verdict.last_sign == s(60) and verdict.bound == 120
    assert "no heartbeat for 121 s" in verdict.reason


@pytest.mark.parametrize(("beats", "interval", "bound"), [
    ([s(0)], 180, 270),  # Prefect's default interval: a 120 s bound would crash live runs
    ([s(0), s(180), s(360)], 30, 270),  # the run's own heartbeats are slower than this process's setting
    ([s(0), s(180)], None, 270),  # heartbeats off here: the observed gap still counts
])
def test_the_bound_is_never_below_one_and_a_half_heartbeat_intervals(beats, interval, bound) -> None:
    verdict = judge(running(), beats, beats[-1] + timedelta(seconds=200), crash_after=120, interval=interval)
    assert verdict.bound == bound and not verdict.dead


def test_a_resumed_run_counts_from_its_resumption_and_ignores_older_attempts() -> None:
    run = running(since=s(1000))  # RUNNING again (a retry, a resumed suspension) at t=1000
    old_beats = [s(0), s(500)]  # the gap of an earlier attempt must not stretch the bound
    verdict = judge(run, old_beats, s(1000 + 50), crash_after=10, interval=30)
    assert verdict.bound == 45 and verdict.last_sign == s(1000) and verdict.dead
    assert "since it entered RUNNING" in verdict.reason
    assert not judge(run, old_beats, s(1000 + 40), crash_after=10, interval=30).dead


def test_without_heartbeats_a_run_that_never_sent_one_is_not_judged() -> None:
    verdict = judge(running(), [], s(10_000), crash_after=120, interval=None)
    assert not verdict.dead and "cannot tell" in verdict.reason


def crashed(run_count: int = 1, message: str = "no heartbeat for 50 s", start: datetime | None = None) -> RunInfo:
    start = start or datetime.now(UTC) - timedelta(minutes=1)  # ledger entries are stamped with the real time
    return RunInfo(run_id="r1", state=StateType.CRASHED, state_since=start, state_message=message,
                   run_count=run_count, start_time=start, parameters={"model": "m", "version": "1.0"})


def test_a_crashed_run_is_closed_once_also_when_swept_again() -> None:
    store = MemoryStore()
    append_entry(store, "m", LedgerKind.STARTED, {"run": "r1", "version": "1.0"}, signer=SIGNER, witnesses=[])
    append_entry(store, "m", LedgerKind.STARTED, {"run": "other", "version": "2.0"}, signer=SIGNER, witnesses=[])
    entry = close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[])
    assert entry is not None and entry.kind == "crashed" and entry.seq == 3
    assert entry.payload == {"run": "r1", "version": "1.0", "run_count": 1, "reason": "no heartbeat for 50 s"}
    assert close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[]) is None
    assert [e.kind for e in read_ledger(store, "m")] == ["started", "started", "crashed"]
    documents = {key: store.get_bytes(key)[0] for key in store.list_keys("evidence/m/ledger/")}
    assert verify_chain("m", documents, trusted_keys=[SIGNER.public_key]) == []


def test_a_run_that_ended_properly_or_never_started_is_not_closed() -> None:
    store = MemoryStore()
    assert close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[]) is None  # no ledger at all
    append_entry(store, "m", LedgerKind.STARTED, {"run": "other", "version": "1.0"}, signer=SIGNER, witnesses=[])
    assert close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[]) is None  # never in the ledger
    append_entry(store, "m", LedgerKind.STARTED, {"run": "r1", "version": "1.0"}, signer=SIGNER, witnesses=[])
    append_entry(store, "m", LedgerKind.FAILED, {"run": "r1", "version": "1.0"}, signer=SIGNER, witnesses=[])
    assert close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[]) is None  # its hook closed it

    # The scan goes newest first and stops at entries older than the run (by over an hour).
    store = MemoryStore()
    append_entry(store, "m", LedgerKind.STARTED, {"run": "r1", "version": "1.0"}, signer=SIGNER, witnesses=[])
    append_entry(store, "m", LedgerKind.STARTED, {"run": "other", "version": "1.0"}, signer=SIGNER, witnesses=[])
    assert close_crashed_run(store, crashed(start=datetime.now(UTC) + timedelta(hours=2)), signer=SIGNER,
                             witnesses=[]) is None
    assert close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[]) is not None
    dry = RunInfo(run_id="r2", state=StateType.CRASHED, state_since=s(1), parameters={
        "model": "m", "version": "1.0", "dry_run": True})
    assert close_crashed_run(store, dry, signer=SIGNER, witnesses=[]) is None


def test_a_retry_that_crashes_again_gets_its_own_entry() -> None:
    store = MemoryStore()
    append_entry(store, "m", LedgerKind.STARTED, {"run": "r1", "version": "1.0"}, signer=SIGNER, witnesses=[])
    assert close_crashed_run(store, crashed(1), signer=SIGNER, witnesses=[]) is not None
    second = close_crashed_run(store, crashed(2), signer=SIGNER, witnesses=[])
    assert second is not None and second.payload["run_count"] == 2
    assert close_crashed_run(store, crashed(2), signer=SIGNER, witnesses=[]) is None
    assert [e.kind for e in read_ledger(store, "m")] == ["started", "crashed", "crashed"]


def test_a_sweep_that_loses_the_race_for_the_head_does_not_append_twice() -> None:
    store = MemoryStore()
    append_entry(store, "m", LedgerKind.STARTED, {"run": "r1", "version": "1.0"}, signer=SIGNER, witnesses=[])
    real_put = store.put_if_absent

    def racing_put(key: str, body: bytes, content_type: str = "") -> str:
        store.put_if_absent = real_put  # type: ignore[method-assign]
        close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[])  # another sweep wins this seq
        return real_put(key, body, content_type)

    store.put_if_absent = racing_put  # type: ignore[method-assign]
    assert close_crashed_run(store, crashed(), signer=SIGNER, witnesses=[]) is None
    assert [e.kind for e in read_ledger(store, "m")] == ["started", "crashed"]


def test_only_old_uploads_of_models_nobody_is_promoting_are_aborted() -> None:
    store = MemoryStore(now=T0)
    dead = store.start_multipart_upload("production/m/1.0/model.joblib")
    busy = store.start_multipart_upload("production/busy/1.0/model.joblib")  # a RUNNING run is copying it
    other_prefix = store.start_multipart_upload("prod-eu/m/2.0/model.joblib")
    candidates = store.start_multipart_upload("candidates/m/3.0/model.joblib")  # not clearance's
    store.advance(timedelta(seconds=200))
    young = store.start_multipart_upload("production/m/2.0/model.joblib")  # begun after the last check
    store.advance(timedelta(seconds=5))
    aborted = abort_orphan_uploads(store, {("busy", "1.0")}, timedelta(seconds=120), ["production", "prod-eu"])
    assert {u.upload_id for u in aborted} == {dead.upload_id, other_prefix.upload_id}
    assert {u.upload_id for u in store.list_multipart_uploads("")} == {busy.upload_id, candidates.upload_id,
                                                                      young.upload_id}

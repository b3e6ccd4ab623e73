"""Promotions whose process is killed (SIGKILL of its whole process group) are noticed.

Two real runs (``clearance promote --direct`` in subprocesses, one model, two versions) are killed
where a killed process hurts: one during its gates (right after its ``started`` entry, before any
sign-off), one in the middle of its multipart copy to production (an upload is listed). Nothing in
them can say goodbye: Prefect keeps them RUNNING, the ledger has no closing entry, the copy's
upload stays. The crash sweep (``tasks/crashes.py``, run every minute by flows/deadlines.py) must
then, and only once the runs have been silent longer than the bound: set them Crashed in Prefect,
close each in the ledger with exactly one ``crashed`` entry, abort the upload, and leave nothing
under production/; ``clearance audit verify`` passes. A retry of the killed copy run then resumes
from its cached steps, appends no entry twice, promotes, and leaves no upload behind.

Heartbeats go every 30 s (Prefect's minimum), so a run counts as dead 45 s after its last sign of
life whatever ``crash_after`` says (1.5 heartbeat intervals): both kills share that wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearance.core.ledger_kinds import TERMINAL
from tests.integration.promotion_kit import (
    REPO,
    cli,
    cli_env,
    decide,
    find_run,
    make_candidate,
    start_direct_run,
    wait_for_request,
    wait_state,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

CLOSING = {kind.value for kind in TERMINAL}

HEARTBEAT_SECONDS = 30  # Prefect's minimum: the fastest a dead run can be told from a live one
CRASH_AFTER = 10.0  # below 1.5 heartbeats: the sweep must still wait 45 s, not 10


def _wait(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the process group: no hook, no finally, no atexit runs."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _entries(s3, model: str, run_id: str) -> list:
    from tasks.ledger import read_ledger

    # gate entries name their evidence (under the run's prefix), not the run
    return [e for e in read_ledger(s3, model)
            if e.payload.get("run") == run_id or f"/{run_id}/" in str(e.payload.get("evidence", ""))]


class _LedgerWatch:
    """A model's ledger as it grows, each entry read once (so it can be polled every few milliseconds)."""

    def __init__(self, s3, model: str) -> None:
        self.s3, self.model, self.entries = s3, model, {}

    def first(self, kind: str, **payload: str):
        from clearance.core.keys import ledger_prefix
        from clearance.ledger import LedgerEntry

        for key in self.s3.list_keys(ledger_prefix(self.model)):
            if key not in self.entries:
                self.entries[key] = LedgerEntry.model_validate(self.s3.get_json(key))
        return next((e for _, e in sorted(self.entries.items()) if e.kind == kind
                     and all(e.payload.get(name) == value for name, value in payload.items())), None)


def _run_count(run_id: str) -> int:
    from uuid import UUID

    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id)).run_count


def _kinds(s3, model: str, run_id: str) -> list[str]:
    return [e.kind for e in _entries(s3, model, run_id)]


@pytest.fixture()
def heartbeats_every_30s(monkeypatch):
    """Runs (children inherit the environment) and the sweep here both use 30 s heartbeats."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}):
        yield


def test_runs_killed_during_gates_and_during_the_copy_are_crashed_closed_and_cleaned(
        s3, tmp_path, monkeypatch, heartbeats_every_30s):
    from clearance.settings import get_settings
    from tasks.crashes import sweep_crashes
    from tasks.object_store import PART_SIZE
    from tasks.prefect_runs import run_state

    started = time.monotonic()
    cand = make_candidate(tmp_path, s3, versions=("1.0.0", "2.0.0"), sizes={"2.0.0": 6 * PART_SIZE})
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))  # the sweep reads the promotion prefixes
    get_settings.cache_clear()
    copying = start_direct_run(cand, "2.0.0", log=tmp_path / "copy.log", own_group=True)
    gated = start_direct_run(cand, "1.0.0", log=tmp_path / "gates.log", own_group=True)
    destination = f"production/{cand.model}/2.0.0/"

    # Killed during its gates: as soon as its run is in the ledger, long before it could ask for sign-off.
    ledger = _LedgerWatch(s3, cand.model)
    start = _wait(lambda: ledger.first("started", version="1.0.0"), 120, "the gated run's started entry")
    _kill(gated)
    gated_run, copy_run = start.payload["run"], find_run(cand.model, "2.0.0")
    # Killed during the copy: approved, then killed as soon as its multipart upload exists.
    wait_for_request(s3, copy_run)
    assert decide(s3, cand, copy_run, "sam").accepted and decide(s3, cand, copy_run, "bea").accepted
    _wait(lambda: s3.list_multipart_uploads(destination), 120, "the copy's multipart upload")
    _kill(copying)
    killed_at = time.monotonic()

    assert "approval-requested" not in _kinds(s3, cand.model, gated_run)  # it really died before sign-off
    copy_kinds = _kinds(s3, cand.model, copy_run)
    assert "approved" in copy_kinds and copy_kinds[-1] not in CLOSING, copy_kinds  # ... and this one before its end
    left = s3.list_multipart_uploads(destination)
    assert len(left) == 1, left  # the kill left the upload behind: nothing aborted it
    assert run_state(gated_run).value == run_state(copy_run).value == "RUNNING"  # and Prefect does not know

    # Silent for less than the bound: a sweep right away leaves both alone.
    early = sweep_crashes(s3, crash_after=CRASH_AFTER)
    assert not {gated_run, copy_run} & {v.run_id for v in early.crashed}, early
    assert run_state(gated_run).value == run_state(copy_run).value == "RUNNING"
    assert s3.list_multipart_uploads(destination) == left

    crashed: dict[str, Any] = {}
    problems: list[str] = [*early.problems]

    def sweep_until_crashed() -> bool:
        swept = sweep_crashes(s3, crash_after=CRASH_AFTER)
        crashed.update({v.run_id: v for v in swept.crashed})
        problems.extend(swept.problems)
        return {gated_run, copy_run} <= set(crashed)

    _wait(sweep_until_crashed, 90, "the sweep crashing both runs", every=2)
    noticed_after = time.monotonic() - killed_at
    for run_id in (gated_run, copy_run):
        verdict = crashed[run_id]
        assert verdict.bound >= 1.5 * HEARTBEAT_SECONDS and verdict.silent_for > verdict.bound
        assert run_state(run_id).value == "CRASHED"
    again = sweep_crashes(s3, crash_after=CRASH_AFTER)  # another pass (the next minute's) changes nothing
    assert not again.closed and not again.aborted, again
    problems.extend(again.problems)

    for run_id in (gated_run, copy_run):
        kinds = _kinds(s3, cand.model, run_id)
        assert kinds.count("crashed") == 1 and kinds[-1] == "crashed", (kinds, problems)
        closing = _entries(s3, cand.model, run_id)[-1]
        assert "no heartbeat" in closing.payload["reason"] and closing.payload["run_count"] == _run_count(run_id)
    assert _kinds(s3, cand.model, gated_run)[0] == "started"
    assert s3.list_multipart_uploads(destination) == []
    assert s3.list_keys(f"production/{cand.model}/") == []  # nothing partial, no pointer
    audit = cli(cand, "dana", "audit", "verify", cand.model)
    assert audit.returncode == 0 and "OK" in audit.stdout, audit.stdout + audit.stderr

    # A retry of the killed copy resumes from what it had done: no entry twice, then it promotes.
    retry = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "flow-run", "retry", copy_run,
         "--entrypoint", "flows/promote.py:promote_model"],
        env=cli_env(cand, "dana"), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert retry.returncode == 0, retry.stdout[-3000:] + retry.stderr[-3000:]
    assert wait_state(copy_run, {"COMPLETED"}) == "COMPLETED"
    kinds = _kinds(s3, cand.model, copy_run)
    assert kinds[-1] == "promoted" and kinds.index("crashed") < kinds.index("promoted"), kinds
    for kind in ("started", "gate", "approval-requested", "approved", "crashed", "promoted"):
        assert kinds.count(kind) == 1, kinds  # the retry appended none of what the first attempt had recorded
    assert s3.sha256_of(destination + "model.joblib")[0] == cand.digests["2.0.0"]
    assert s3.list_multipart_uploads(destination) == []
    sweep_crashes(s3, crash_after=CRASH_AFTER)  # a promoted run is not closed again
    assert _kinds(s3, cand.model, copy_run).count("crashed") == 1
    audit = cli(cand, "dana", "audit", "verify", cand.model)
    assert audit.returncode == 0 and "OK" in audit.stdout, audit.stdout + audit.stderr
    print(f"killed → crashed in {noticed_after:.0f} s; whole case {time.monotonic() - started:.0f} s")

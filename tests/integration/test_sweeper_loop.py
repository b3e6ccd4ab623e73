"""The sweep runs inside a long-lived process (`clearance worker`, `clearance sweep --every`), not as a
Prefect deployment that starts a new process and a flow run every minute.

On the session's real Prefect server and SeaweedFS: one `clearance worker` process runs a promotion that
suspends, applies its approval deadline from its own sweep loop (no other worker or sweep runs), and creates
no flow run of its own; a pass that raises is logged and the next pass runs; SIGTERM ends it in seconds.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.promotion_kit import (
    POLICY_HIGH,
    REPO,
    cli_env,
    make_candidate,
    stop_worker,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration
POOL = "clearance-sweeper-tests"
PASS = re.compile(r"sweep pass (\d+) (ok|partly failed|failed) in [\d.]+ s.*\(pid (\d+)\)")


def _passes(log: Path) -> list[tuple[int, str, int, str]]:
    """(number, outcome, pid, line) of every pass line the process logged so far."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        found = PASS.search(line)
        if found:
            out.append((int(found[1]), found[2], int(found[3]), line))
    return out


def _wait_for(condition, log: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s; log:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)


def _terminate(proc: subprocess.Popen, log: Path) -> float:
    """SIGTERM; the seconds it took to exit (fails the test after 10)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        pytest.fail(f"still running 10 s after SIGTERM; log:\n{log.read_text(errors='replace')[-3000:]}")
    return time.monotonic() - started


def _count_runs(flow: str | None = None) -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.count_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])) if flow else None)


def test_the_worker_process_applies_a_deadline_from_its_own_sweep(s3, tmp_path, monkeypatch):
    from prefect.deployments import run_deployment

    from clearance.app.deployments import register_deployments
    from tasks.ledger import read_ledger

    policy = copy.deepcopy(POLICY_HIGH)
    policy["approvals"]["timeout"] = "6s"
    cand = make_candidate(tmp_path, s3, policy=policy)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    register_deployments(POOL)

    log = tmp_path / "worker.log"
    env = cli_env(cand, "dana") | {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
                                   "PREFECT_LOGGING_LEVEL": "INFO"}
    sweep_runs, all_runs = _count_runs("approval-deadlines"), _count_runs()
    proc = subprocess.Popen([sys.executable, "-m", "clearance", "worker", "--pool", POOL, "--sweep-every", "2"],
                            env=env, cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # The worker part: it picks up the promotion, which suspends (no process holds it) at its sign-off.
        run_id = str(run_deployment("promote-model/promote-model", timeout=0,
                                    parameters={"model": cand.model, "version": "1.0.0", "initiator": "dana"}).id)
        wait_for_request(s3, run_id, timeout=180)
        # The sweep part: nobody decides; only this process's sweep loop can notice the deadline and wake the
        # run, which the same process then runs to its end.
        final = wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}, timeout=180)
        assert final == "FAILED", log.read_text()[-4000:]
        assert [e.kind for e in read_ledger(s3, cand.model)][-1] == "timed-out"
        passes = _passes(log)
        assert any(" 1 woken" in line for *_, line in passes), log.read_text()[-4000:]
        _wait_for(lambda: len(_passes(log)) >= len(passes) + 2, log, 30, "two more passes")
        passes = _passes(log)
        assert {pid for _, _, pid, _ in passes} == {proc.pid}  # every pass in the one long-lived process
        assert [n for n, *_ in passes] == list(range(1, len(passes) + 1)) and len(passes) >= 4
        assert {outcome for _, outcome, _, _ in passes} == {"ok"}, passes
        assert proc.poll() is None
        # No flow run of a sweep deployment, and none at all but the promotion itself.
        assert _count_runs("approval-deadlines") == sweep_runs
        assert _count_runs() == all_runs + 1
        seconds = _terminate(proc, log)
    finally:
        stop_worker(proc, grace=10)
    assert proc.returncode == 0 and seconds < 12, (proc.returncode, seconds, log.read_text()[-3000:])
    assert "sweeper stopped after" in log.read_text()
    assert re.search(r"Worker '.*' stopped\.", log.read_text())  # (the flow run's own traceback is in the log too)


def test_a_failing_pass_is_logged_and_the_loop_goes_on(s3, s3_service, tmp_path):
    from tests.fakes.fault_proxy import FaultProxy

    cand = make_candidate(tmp_path, s3)
    proxy = FaultProxy(s3_service.endpoint_url, s3_service.access_key_id, s3_service.secret_access_key,
                       s3_service.region).start()
    log = tmp_path / "sweep.log"
    env = cli_env(cand, "dana") | {"CLEARANCE_S3_ENDPOINT_URL": proxy.url, "CLEARANCE_S3_RETRY_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "clearance", "sweep", "--every", "1"], env=env, cwd=REPO,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def outcomes_after(count: int) -> list[str]:
        return [outcome for n, outcome, _, _ in _passes(log) if n > count]

    try:
        _wait_for(lambda: "ok" in outcomes_after(0), log, 90, "a first good pass")
        # The store answers 503 for a while: whole passes fail, each logged in one line, and the loop goes on.
        proxy.outage(6, "503")
        seen = len(_passes(log))
        _wait_for(lambda: outcomes_after(seen).count("failed") >= 2, log, 30, "two failed passes")
        failed = [line for _, outcome, _, line in _passes(log) if outcome == "failed"]
        assert all(proxy.url in line or "503" in line for line in failed), failed
        proxy.heal()
        seen = len(_passes(log))
        _wait_for(lambda: "ok" in outcomes_after(seen), log, 30, "a good pass once the store is back")

        # A config edited into an invalid state: the reminders and lapses of a pass fail, the deadlines still run.
        principals = cand.config_dir / "principals.yaml"
        good = principals.read_text()
        principals.write_text("principals: [{id: 1")
        seen = len(_passes(log))
        _wait_for(lambda: "partly failed" in outcomes_after(seen), log, 30, "a partly failed pass")
        partly = [line for _, outcome, _, line in _passes(log) if outcome == "partly failed"]
        assert "reminders failed" in partly[0] and "lapses failed" in partly[0] and "0 woken" in partly[0], partly
        principals.write_text(good)
        seen = len(_passes(log))
        _wait_for(lambda: "ok" in outcomes_after(seen), log, 30, "a good pass after the fix")

        passes = _passes(log)
        assert {pid for _, _, pid, _ in passes} == {proc.pid}  # one process throughout
        assert [n for n, *_ in passes] == list(range(1, len(passes) + 1))  # one line per pass, none lost
        seconds = _terminate(proc, log)
    finally:
        stop_worker(proc, grace=10)
        proxy.stop()
    # A pass under way finishes first (about 2 s here, more on a loaded machine), then the process exits.
    assert proc.returncode == 0 and seconds < 12, (proc.returncode, seconds, log.read_text()[-3000:])
    assert "sweeper stopped after" in log.read_text() and "Traceback" not in log.read_text()


def test_deploy_removes_the_every_minute_sweep_an_older_deploy_left(s3, tmp_path, monkeypatch):
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from clearance.app.deployments import (
        RETIRED_SWEEP,
        _deploy,
        ensure_work_pool,
        forwarded_env,
        register_deployments,
    )
    from flows.deadlines import approval_deadlines

    cand = make_candidate(tmp_path, s3)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    ensure_work_pool(POOL)
    # What `clearance deploy` registered before the sweep moved into the worker.
    assert _deploy(approval_deadlines, "flows/deadlines.py:approval_deadlines", "every-minute", POOL,
                   forwarded_env(), "old", interval=60) == RETIRED_SWEEP
    done = register_deployments(POOL)
    assert done.removed == [RETIRED_SWEEP] and RETIRED_SWEEP not in done.names
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_deployment_by_name(RETIRED_SWEEP)
    assert register_deployments(POOL).removed == []  # nothing left to remove

"""Many promotions at once on Prefect's own engine (issue 18): runs wait for sign-off as *suspended* deployment
runs (no process held per waiting run), a burst of approvals resumes them on two process workers, and every
one is promoted exactly once with its ledger intact — also when one worker is killed in the middle.

`make test` runs this in the session whose Prefect server is PostgreSQL-backed (CLEARANCE_LOCAL_DB=postgres);
on SQLite it runs too (slower, and it is where "database is locked" shows). The figures for 100 runs are
bench/promotion_burst_bench.py's (bench/RESULTS.md); this is the correctness side, with 20.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.integration.promotion_kit import (
    decide,
    many_models,
    start_pool_worker,
    stop_worker,
    wait_all,
    wait_for_request,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]
POOL = "clearance-burst"
RUNS = int(os.environ.get("CLEARANCE_BURST_RUNS", "20"))
EXPECTED = ["started", "gate", "approval-requested", "approved", "promoting", "promoted"]


def processes_of(workers: list[subprocess.Popen], run_ids: set[str]) -> list[str]:
    """The flow runs among ``run_ids`` that a worker's child process is executing (its PREFECT__FLOW_RUN_ID)."""
    held = []
    for worker in workers:
        for child in psutil.Process(worker.pid).children(recursive=True):
            try:
                run_id = child.environ().get("PREFECT__FLOW_RUN_ID")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if run_id in run_ids:
                held.append(run_id)
    return held


def test_burst_of_approvals_promotes_every_waiting_run_exactly_once(s3, prefect_service, tmp_path, monkeypatch):
    from prefect.deployments import run_deployment

    from clearance.app.deployments import ensure_work_pool, register_deployments
    from tasks.ledger import read_ledger
    from tasks.promotion import read_pointer

    candidates = many_models(tmp_path, s3, RUNS)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(candidates[0].config_dir))
    ensure_work_pool(POOL)
    register_deployments(POOL)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    # clearance worker: Prefect's process worker and, in the same process, the sweep (every 5 s here), which
    # schedules again the runs a killed worker had taken and never started (CLEARANCE_PENDING_AFTER_SECONDS).
    workers = [start_pool_worker(POOL, log, clearance=True, SWEEP_EVERY="5", LIMIT="8",
                                 CLEARANCE_PENDING_AFTER_SECONDS="45", PREFECT_CLIENT_MAX_RETRIES="20")
               for log in logs]
    try:
        run_ids = [str(run_deployment("promote-model/promote-model", timeout=0,
                                      parameters={"model": c.model, "version": "1.0.0", "initiator": "dana"}).id)
                   for c in candidates]
        for run_id in run_ids:
            wait_for_request(s3, run_id, timeout=600)
        states = wait_all(run_ids, {"Suspended"}, timeout=300)
        assert set(states.values()) == {"Suspended"}, states
        # Waiting costs no process: once every run is suspended, no process of any of them is left (a process
        # exits a moment after its run turned Suspended; other deployments' runs may come and go meanwhile).
        deadline = time.monotonic() + 90
        while (holding := processes_of(workers, set(run_ids))) and time.monotonic() < deadline:
            time.sleep(1)
        assert holding == [], holding

        # The burst: both approvers of every run at once, through the shared intake (what CLI, Slack and Jira
        # call), 8 at a time; half-way through, one worker is killed (SIGKILL, the worker process only: the
        # flow runs it already started go on; those it had taken and not yet started stay Pending until the other
        # worker's sweep schedules them again, and the runs nobody had taken go to the other worker).
        def approve(pair):
            cand, run_id = pair
            assert decide(s3, cand, run_id, "sam").accepted
            assert decide(s3, cand, run_id, "bea").accepted

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(approve, pair) for pair in zip(candidates, run_ids, strict=True)]
            futures[len(futures) // 2].result()
            os.kill(workers[0].pid, signal.SIGKILL)
            for future in futures:
                future.result()

        states = wait_all(run_ids, {"Completed", "Failed", "Crashed", "Cancelled"}, timeout=900)
        assert set(states.values()) == {"Completed"}, (states, logs[1].read_text()[-3000:])
        for cand, run_id in zip(candidates, run_ids, strict=True):
            kinds = [e.kind for e in read_ledger(s3, cand.model)]
            assert kinds == EXPECTED, (cand.model, run_id, kinds)  # each step once: no double promotion
            pointer = read_pointer(s3, "production", cand.model).pointer
            assert pointer is not None and pointer.version == "1.0.0", (cand.model, pointer)
    finally:
        for worker in workers:
            if worker.poll() is None:
                stop_worker(worker)
            else:  # the killed one: its flow-run children may still be finishing
                try:
                    os.killpg(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # The chains of a sample, checked as an auditor would (signatures, bundles, decisions' proofs).
    env = dict(os.environ, CLEARANCE_CONFIG_DIR=str(candidates[0].config_dir))
    for cand in candidates[:3]:
        audit = subprocess.run([sys.executable, "-m", "clearance", "audit", "verify", cand.model], env=env,
                               capture_output=True, text=True, timeout=180)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "chain intact" in audit.stdout

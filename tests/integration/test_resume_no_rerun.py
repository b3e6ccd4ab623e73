"""A suspended deployment run, resumed by its approval, executes only what comes after the sign-off.

Prefect 3 re-runs a resumed flow from the top; every task that finished before the wait must come back
from its cache (``Cached``), not run again: a gate re-evaluated, a store probe, an approval request
re-opened or a recovery pass are work (and CPU) the resume should not pay, and a re-run gate may decide
differently. Real Prefect (a process worker, as ``clearance promote`` starts runs by default), real
SeaweedFS; the task runs are counted through the Prefect API, per flow run.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any, cast
from uuid import UUID

import pytest

from tests.integration.promotion_kit import (
    POLICY_HIGH,
    decide,
    make_candidate,
    pool_worker,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration
POOL = "clearance-resume-tests"

# Two gates: the blocking integrity check, and an advisory security scan (it also fetches the candidate's
# files and reads the buckets' posture before it, then discards the files: more steps before the wait).
POLICY_TWO_GATES: dict[str, Any] = copy.deepcopy(POLICY_HIGH) | {"gates": [
    {"id": "artifact_integrity", "mode": "blocking", "config": {"allowed_formats": ["joblib"]}},
    {"id": "security_scan", "mode": "advisory", "config": {"allowed_formats": ["joblib"]}},
]}
# The wait itself re-reads the approvals record (and the request as first opened) after every wake-up.
WAIT_READS = {"read-approvals", "read-approval-request"}
# What an approved run does after its sign-off, once each (two ledger entries and two announcements).
AFTER_SIGN_OFF = Counter({"ledger-append": 2, "announce": 2, "supersede-older-requests": 1,
                          "promote-to-production": 1, "seal-evidence": 1, "close-run": 1})


@pytest.fixture(scope="module")
def worker(prefect_service, s3_service, tmp_path_factory):
    """``clearance worker`` on a pool of this module's own: runs and resumes are forked warm from its template."""
    yield from pool_worker(POOL, tmp_path_factory.mktemp("resume-worker"), clearance=True)


def task_runs(run_id: str) -> dict[str, Any]:
    """Task run id → task run, of one flow run, once the count has stopped changing (Prefect records task
    run states from events, a moment after they happen)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    seen: dict[str, Any] = {}
    stable_since = time.monotonic()
    while time.monotonic() - stable_since < 3:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])),
                                         limit=200)
        now = {str(r.id): r for r in runs}
        if set(now) != set(seen) or any(r.state_type != seen[i].state_type for i, r in now.items()):
            stable_since = time.monotonic()
        seen = now
        time.sleep(0.5)
    return seen


def executed(runs: list[Any]) -> Counter[str]:
    """Task name → how many of these task runs really ran (Completed, not from the cache)."""
    return Counter(r.name.rsplit("-", 1)[0] for r in runs
                   if r.state_type is not None and r.state_type.value == "COMPLETED" and r.state_name != "Cached")


def test_resumed_pass_runs_only_what_follows_the_sign_off(s3, worker, tmp_path, monkeypatch):
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    from clearance.app.deployments import register_deployments
    from tasks.ledger import read_ledger

    cand = make_candidate(tmp_path, s3, policy=POLICY_TWO_GATES)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    register_deployments(POOL)
    run = run_deployment("promote-model/promote-model", timeout=0,
                         parameters={"model": cand.model, "version": "1.0.0", "initiator": "dana"})
    run_id = str(cast(FlowRun, run).id)  # sync context: never the coroutine
    wait_for_request(s3, run_id, timeout=180)
    first_pass = task_runs(run_id)
    before_wait = executed(list(first_pass.values()))
    assert before_wait["gate"] == 2, before_wait  # both gates ran before the wait
    assert before_wait["open-approval-request"] == 1, before_wait

    assert decide(s3, cand, run_id, "sam").accepted
    assert decide(s3, cand, run_id, "bea").accepted
    assert wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}, timeout=180) == "COMPLETED", \
        worker.read_text()[-4000:]
    assert [e.kind for e in read_ledger(s3, cand.model)] == [
        "started", "gate", "gate", "approval-requested", "approved", "promoting", "promoted"]

    resumed = [r for i, r in task_runs(run_id).items() if i not in first_pass]
    assert resumed, "the resumed pass made no task runs: it did not run the flow again"
    ran_again = executed(resumed)
    # Only the wait's reads and what follows the sign-off ran; everything before the wait came from its cache.
    after = Counter({name: n for name, n in ran_again.items() if name not in WAIT_READS})
    assert after == AFTER_SIGN_OFF, f"re-executed on resume: {sorted((after - AFTER_SIGN_OFF).elements())}"
    cached = Counter(r.name.rsplit("-", 1)[0] for r in resumed if r.state_name == "Cached")
    assert cached["gate"] == 2 and cached["open-approval-request"] == 1, cached
    # The resume was a fork of the worker's template (clearance/app/warm_start.py), not a new Python.
    assert f"flow run {run_id} forked from template" in worker.read_text(errors="replace")

"""The deployment path: a worker runs the promotion, the sign-off suspends it (no process held),
and approvals resume it; finished tasks are not run again after the resume."""

from __future__ import annotations

from datetime import UTC

import pytest

from tests.integration.promotion_kit import (
    decide,
    make_candidate,
    pool_worker,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration
POOL = "clearance-tests"


@pytest.fixture(scope="module")
def worker(prefect_service, s3_service, tmp_path_factory):
    """Prefect's own ``prefect worker start`` for this module's deployment runs: the deployments need nothing else."""
    yield from pool_worker(POOL, tmp_path_factory.mktemp("worker"), clearance=False)


def start_deployment_run(cand, monkeypatch) -> str:
    """Register the deployments on this candidate's configs and start a promotion of 1.0.0 as dana."""
    from prefect.deployments import run_deployment

    from clearance.app.deployments import register_deployments

    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    register_deployments(POOL)
    run = run_deployment("promote-model/promote-model", timeout=0,
                         parameters={"model": cand.model, "version": "1.0.0", "initiator": "dana"})
    return str(run.id)




def test_suspended_run_resumes_without_rerunning_finished_work(s3, worker, tmp_path, monkeypatch):
    from uuid import UUID

    from prefect import get_client

    from tasks.ledger import read_ledger

    cand = make_candidate(tmp_path, s3)
    run_id = start_deployment_run(cand, monkeypatch)
    wait_for_request(s3, run_id, timeout=180)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(UUID(run_id)).state.name == "Suspended"
    gate_evidence = f"evidence/{cand.model}/1.0.0/{run_id}/gate-artifact_integrity.json"
    first_gate_run = s3.head(gate_evidence).etag

    assert decide(s3, cand, run_id, "dana").refusal.reason.value == "self_approval"
    assert decide(s3, cand, run_id, "sam").accepted
    assert decide(s3, cand, run_id, "bea").accepted
    final = wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}, timeout=180)
    assert final == "COMPLETED", worker.read_text()[-4000:]
    kinds = [e.kind for e in read_ledger(s3, cand.model)]
    # Each step exactly once although the flow body ran twice (before and after the suspension).
    assert kinds == ["started", "gate", "approval-requested", "approved", "promoting", "promoted"]
    assert s3.head(gate_evidence).etag == first_gate_run
    assert s3.sha256_of(f"production/{cand.model}/1.0.0/model.joblib")[0] == cand.digests["1.0.0"]


def test_suspended_run_past_its_deadline_is_closed_by_the_sweep(s3, worker, tmp_path, monkeypatch):
    import copy
    import time

    from tasks.deadlines import expire_overdue
    from tasks.ledger import read_ledger
    from tests.integration.promotion_kit import POLICY_HIGH

    policy = copy.deepcopy(POLICY_HIGH)
    policy["approvals"]["timeout"] = "8s"
    cand = make_candidate(tmp_path, s3, policy=policy)
    run_id = start_deployment_run(cand, monkeypatch)
    wait_for_request(s3, run_id, timeout=180)
    from datetime import datetime

    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record

    deadline = read_record(s3, record_key_for_run(s3, run_id))[0].request.deadline
    if (deadline - datetime.now(UTC)).total_seconds() > 1:
        assert run_id not in expire_overdue(s3)  # not due yet: left waiting
        assert wait_state(run_id, {"PAUSED"}) == "PAUSED"
    # Deadlines are judged by the store's clock (its Date header: whole seconds), not this machine's.
    while s3.server_time() <= deadline:
        time.sleep(0.25)
    assert run_id in expire_overdue(s3)
    assert wait_state(run_id, {"FAILED", "COMPLETED"}, timeout=180) == "FAILED"
    assert [e.kind for e in read_ledger(s3, cand.model)][-1] == "timed-out"

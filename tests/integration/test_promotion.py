"""A promotion end to end against a real Prefect server and a real SeaweedFS.

Runs go through `clearance promote --direct` in subprocesses (the pause path); decisions go
through the shared approval intake or the real CLI. Each test uses its own model name, so
ledgers and production pointers never collide.
"""

from __future__ import annotations

import copy
import json
import re
import time

import pytest

from tests.integration.promotion_kit import (
    POLICY_HIGH,
    cli,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration




def pointer(s3, model):
    from tasks.promotion import read_pointer

    return read_pointer(s3, "production", model).pointer


def ledger_kinds(s3, model):
    from tasks.ledger import read_ledger

    return [e.kind for e in read_ledger(s3, model)]


def test_promotion_end_to_end_with_quorum_and_refusals(s3, tmp_path):
    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)

    # The initiator (and author) may not approve; the refusal is recorded, not counted.
    refused = cli(cand, "dana", "approve", run_id)
    assert refused.returncode == 1 and "self_approval" in refused.stderr
    # A principal without a required role is refused.
    assert decide(s3, cand, run_id, "carl").refusal.reason.value == "missing_role"
    # Two security people do not satisfy the business role.
    assert decide(s3, cand, run_id, "sam").accepted
    assert decide(s3, cand, run_id, "sam").refusal.reason.value == "already_counted"
    assert decide(s3, cand, run_id, "sol").accepted
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"
    # The business approval through the real CLI completes the quorum and wakes the run.
    done = cli(cand, "bea", "approve", run_id, "--comment", "KPI reviewed")
    assert done.returncode == 0, done.stderr
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]

    live = pointer(s3, cand.model)
    assert live.version == "1.0.0" and live.run_id == run_id
    prod_key = f"production/{cand.model}/1.0.0/model.joblib"
    assert s3.sha256_of(prod_key)[0] == cand.digests["1.0.0"]
    assert ledger_kinds(s3, cand.model) == ["started", "gate", "approval-requested", "approved", "promoting",
                                            "promoted"]
    record = json.loads(s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run_id}/approvals.json")[0])
    assert sorted(d["principal"] for d in record["decisions"]) == ["bea", "sam", "sol"]
    assert {r["reason"] for r in record["refusals"]} >= {"self_approval", "missing_role", "already_counted"}
    audit = cli(cand, "dana", "audit", "verify", cand.model)
    assert audit.returncode == 0 and "OK" in audit.stdout and "1 evidence bundle match" in audit.stdout, audit.stdout
    status = cli(cand, "dana", "status", run_id)
    assert "artifact_integrity" in status.stdout and "approved" in status.stdout

    # The run sealed its evidence: the report (Markdown and HTML) is in the bundle the ledger anchors.
    prefix = f"evidence/{cand.model}/1.0.0/{run_id}/"
    page = s3.get_bytes(prefix + "report.html")[0].decode()
    assert f"{cand.model} 1.0.0: PROMOTED" in page and "KPI reviewed" in page
    from tasks.ledger import read_ledger

    promoted = read_ledger(s3, cand.model)[-1]
    assert promoted.payload["bundle"] == prefix + "bundle.json"
    bundle = json.loads(s3.get_bytes(prefix + "bundle.json")[0])
    assert {"gate-artifact_integrity.json", "report.md", "report.html", "approvals-at-seal.json"} <= \
        {f["name"] for f in bundle["files"]}
    # Rewriting the report afterwards (plain S3 overwrite, as someone with bucket access could) is named.
    s3.client.put_object(Bucket=s3.bucket, Key=prefix + "report.html", Body=page.replace("KPI reviewed", "ok"))
    audit = cli(cand, "dana", "audit", "verify", cand.model)
    assert audit.returncode == 1 and f"{prefix}report.html: altered" in audit.stderr, audit.stderr


def test_rejection_fails_the_run(s3, tmp_path):
    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert decide(s3, cand, run_id, "sam").accepted
    rejected = cli(cand, "bea", "reject", run_id, "--reason", "no KPI baseline")
    assert rejected.returncode == 0, rejected.stderr
    assert finish(proc) != 0
    assert wait_state(run_id, {"FAILED"}) == "FAILED"
    assert pointer(s3, cand.model) is None
    assert ledger_kinds(s3, cand.model)[-1] == "rejected"
    assert not s3.list_keys(f"production/{cand.model}/")


def test_timeout_applies_the_policy_outcome(s3, tmp_path):
    policy = copy.deepcopy(POLICY_HIGH)
    policy["approvals"]["timeout"] = "4s"
    cand = make_candidate(tmp_path, s3, policy=policy)
    proc = start_direct_run(cand, "1.0.0")
    run_id = find_run(cand.model, "1.0.0")
    assert finish(proc) != 0
    assert ledger_kinds(s3, cand.model)[-1] == "timed-out"
    late = decide(s3, cand, run_id, "sam")
    assert late.refusal.reason.value in {"request_closed", "deadline_passed"}
    assert pointer(s3, cand.model) is None


def test_swapped_artifact_after_approval_aborts(s3, tmp_path):
    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    # Someone replaces the candidate after the gates passed (the store allows overwrites of candidates).
    s3.client.put_object(Bucket=s3.bucket, Key=cand.key("1.0.0"), Body=b"\x80\x05evil")
    # CLI approvals bind to the candidate as it is now: the swapped digest is refused.
    refused = cli(cand, "sam", "approve", run_id)
    assert refused.returncode == 1 and "digest_mismatch" in refused.stderr
    # Approvers who reviewed the original (its digest) reach quorum; the promotion re-checks and aborts.
    assert decide(s3, cand, run_id, "sam").accepted
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc) != 0
    assert ledger_kinds(s3, cand.model)[-1] == "promotion-failed"
    assert not s3.list_keys(f"production/{cand.model}/")


def test_two_concurrent_promotions_one_pointer_move(s3, tmp_path):
    cand = make_candidate(tmp_path, s3, versions=("1.0.0", "2.0.0"))
    procs = {v: start_direct_run(cand, v) for v in ("1.0.0", "2.0.0")}
    runs = {v: find_run(cand.model, v) for v in procs}
    for run_id in runs.values():
        wait_for_request(s3, run_id)
    for run_id in runs.values():
        assert decide(s3, cand, run_id, "sam").accepted
        assert decide(s3, cand, run_id, "bea").accepted
    codes = {v: finish(p) for v, p in procs.items()}
    assert sorted(codes.values())[0] == 0 and sorted(codes.values())[1] != 0, codes
    winner = next(v for v, c in codes.items() if c == 0)
    loser = next(v for v in codes if v != winner)
    assert pointer(s3, cand.model).version == winner
    kinds = ledger_kinds(s3, cand.model)
    assert kinds.count("promoted") == 1 and kinds.count("promotion-failed") == 1
    assert kinds.count("promoting") == 2  # both recorded their intent before touching production/
    # The loser's copy is complete but not live, and says so next to it; the winner's carries no marker.
    assert s3.sha256_of(f"production/{cand.model}/{loser}/model.joblib")[0] == cand.digests[loser]
    marker = json.loads(s3.get_bytes(f"production/{cand.model}/{loser}/NOT-LIVE.json")[0])
    assert marker["live"] is False and list(marker["runs"]) == [runs[loser]], marker
    assert s3.head(f"production/{cand.model}/{winner}/NOT-LIVE.json") is None
    # Neither history nor the audit takes it for certified: one promotion, the winner's, is live.
    shown = cli(cand, "dana", "history", cand.model)
    assert shown.returncode == 0 and f"live: {cand.model} {winner}" in shown.stdout, shown.stdout
    assert f"live: {cand.model} {loser}" not in shown.stdout
    audit = cli(cand, "dana", "audit", "verify", cand.model)
    assert audit.returncode == 0 and "2 evidence bundles match" in audit.stdout, audit.stdout + audit.stderr
    assert ledger_kinds(s3, cand.model) == kinds  # and neither wrote anything


def test_dry_run_writes_only_its_evidence(s3, tmp_path):
    cand = make_candidate(tmp_path, s3)
    before = set(s3.list_keys(""))
    proc = start_direct_run(cand, "1.0.0", dry_run=True, log=tmp_path / "dry.log")
    assert finish(proc) == 0, (tmp_path / "dry.log").read_text()[-3000:]
    run_id = find_run(cand.model, "1.0.0")
    new = set(s3.list_keys("")) - before
    prefix = f"evidence/{cand.model}/1.0.0/{run_id}/"
    assert new and all(key.startswith(prefix) for key in new), sorted(new)
    dry = json.loads(s3.get_bytes(prefix + "dry-run.json")[0])
    assert dry["eligible"] == {"business": ["bea"], "security": ["sam", "sol"]}
    assert pointer(s3, cand.model) is None


def test_gate_failure_stops_before_sign_off(s3, tmp_path):
    cand = make_candidate(tmp_path, s3)
    s3.client.put_object(Bucket=s3.bucket, Key=cand.key("1.0.0"), Body=b"\x80\x05tampered")
    proc = start_direct_run(cand, "1.0.0")
    assert finish(proc) != 0
    assert ledger_kinds(s3, cand.model) == ["started", "gate", "gate-failed"]


def test_prefect_ui_form_counts_as_a_channel(s3, tmp_path):
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactCollectionFilter,
        ArtifactCollectionFilterFlowRunId,
        ArtifactCollectionFilterKey,
    )
    from prefect.flow_runs import resume_flow_run

    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    resume_flow_run(UUID(run_id), run_input={"approver": "sam", "decision": "approve", "comment": "via UI"})
    wait_state(run_id, {"PAUSED"})  # one role still missing: the run waits again
    # the reopened form shows the tally: sam counted, business still needed
    key, form = _form_text(run_id)
    assert re.search(r"\| security \| 1 \| sam \| 0 \|", form) and re.search(r"\| business \| 1 \| - \| 1 \|", form)
    # the initiator approving her own model through the form: refused, and said on the run page and the form
    resume_flow_run(UUID(run_id), run_input={"approver": "dana", "decision": "approve", "comment": ""})
    wait_state(run_id, {"PAUSED"})
    _, form = _form_text(run_id, not_of=key)
    assert "Last refused:" in form and "self_approval" in form
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=["sign-off-refused"]),
            flow_run_id=ArtifactCollectionFilterFlowRunId(any_=[UUID(run_id)])))
    assert artifact and "self_approval" in str(artifact[0].data)
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc) == 0
    record = json.loads(s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run_id}/approvals.json")[0])
    assert {(d["principal"], d["channel"]) for d in record["decisions"]} == {("sam", "prefect-ui"), ("bea", "cli")}


def _form_text(run_id: str, not_of: str | None = None) -> tuple[str, str]:
    """The key and the description the Prefect UI shows above the sign-off form of the run's current pause (one
    other than the pause whose key is ``not_of``: the run has paused again since)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.input.run_input import read_flow_run_input

    deadline = time.monotonic() + 30
    text = None
    while text is None and time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        keyset = state.state_details.run_input_keyset if state else None
        key = keyset["description"] if keyset else None
        text = read_flow_run_input(key, flow_run_id=UUID(run_id)) if key and key != not_of else None
        if text is None:
            time.sleep(0.3)
    return str(key), str(text)


def test_server_restart_while_waiting(s3, tmp_path, prefect_service):
    from clearance.dev import devservers

    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert decide(s3, cand, run_id, "sam").accepted
    devservers.restart_prefect(prefect_service)
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert pointer(s3, cand.model).version == "1.0.0"

"""Rollback end to end on the real SeaweedFS and Prefect server: the pointer back to an earlier certified version.

Promotions run in this process (a tier without sign-off, so they finish at once); the rollback that waits for a
sign-off runs in a subprocess (the pause path) and is approved through the shared intake. Each test has its own
model name.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time

import pytest

from clearance.core.ledger_kinds import LedgerKind
from tests.integration.promotion_kit import (
    POLICY_HIGH,
    REPO,
    Candidate,
    cli_env,
    decide,
    finish,
    give_ssh_keys,
    make_candidate,
    wait_for_request,
)

pytestmark = pytest.mark.integration

QUICK = copy.deepcopy(POLICY_HIGH) | {"approvals": {"roles": {}, "channels": ["cli"], "timeout": "1h"}}
#: Re-certified by a gate; a failed re-certification rolls back.
AUTOMATIC = QUICK | {"recertification": {"gates": QUICK["gates"], "validity": "30d", "on_failure": "rollback"}}
SIGNED_OFF = QUICK | {"rollback": {"approvals": {"roles": {"security": {"min": 1}}, "channels": ["cli"],
                                                 "timeout": "1h"},
                                   "emergency_roles": ["compliance"]}}


@pytest.fixture
def configured(monkeypatch, s3, tmp_path):
    """``make(policy)``: a candidate with versions 1.0.0 and 1.1.0, whose configs this process uses."""
    from clearance.settings import get_settings

    def make(policy) -> Candidate:
        cand = make_candidate(tmp_path, s3, versions=("1.0.0", "1.1.0"), policy=policy)
        monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
        get_settings.cache_clear()
        return cand

    yield make
    get_settings.cache_clear()


def promote_both(cand: Candidate) -> None:
    from flows.promote import promote_model

    for version in ("1.0.0", "1.1.0"):
        assert promote_model(model=cand.model, version=version, initiator="dana").status == "promoted"


def pointer(s3, model):
    from tasks.promotion import read_pointer

    return read_pointer(s3, "production", model).pointer


def ledger(s3, model):
    from tasks.ledger import read_ledger

    return read_ledger(s3, model)


def rollback_run(model: str, timeout: float = 120) -> str:
    """The id of the rollback-model run of ``model`` (polls the Prefect API)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["rollback-model"])))
        for run in runs:
            if run.parameters.get("model") == model:
                return str(run.id)
        time.sleep(0.3)
    raise TimeoutError(f"no rollback run of {model} appeared")


def test_rollback_moves_the_pointer_back_with_a_full_ledger_trail(s3, configured):
    from clearance.ledger import verify_chain
    from clearance.ledger.rollback import certified_targets
    from flows.rollback import rollback_model
    from tasks.bundle import audit_evidence
    from tasks.ledger import audit_ledger
    from tasks.signing import own_public_keys

    cand = configured(AUTOMATIC)
    promote_both(cand)
    before = pointer(s3, cand.model)
    result = rollback_model(model=cand.model, to_version="1.0.0", reason="latency regression", initiator="sam")
    assert result.status == "rolled-back" and result.version == "1.0.0" and result.from_version == "1.1.0"
    assert result.closed_by == ["policy: no sign-off for a rollback"]
    now = pointer(s3, cand.model)
    assert (now.version, now.run_id, now.previous_run_id) == ("1.0.0", result.run_id, before.run_id)
    entries = ledger(s3, cand.model)
    trail = [e for e in entries if e.payload.get("run") == result.run_id]
    assert [e.kind for e in trail] == ["rollback-requested", "approved", "rolling-back", "rolled-back"]
    requested, closed = trail[0].payload, trail[-1].payload
    assert requested["from_version"] == "1.1.0" and requested["reason"] == "latency regression"
    assert requested["initiator"] == "sam" and requested["automatic"] is False
    assert closed["replaces_run"] == before.run_id and closed["production"] == now.artifacts
    assert closed["bundle"].endswith("bundle.json")
    documents = {key: s3.get_bytes(key)[0] for key in s3.list_keys(f"evidence/{cand.model}/ledger/")}
    assert verify_chain(cand.model, documents, trusted_keys=own_public_keys()) == []
    anchor = (now.ledger_seq, now.ledger_hash)  # the pointer names the entry that approved the move
    audit = audit_ledger(s3, cand.model, trusted_keys=own_public_keys(), readings=[], expected_head=anchor)
    assert audit.problems == []
    assert next(e for e in trail if e.seq == now.ledger_seq).kind == "approved"
    assert audit_evidence(s3, entries)[1] == []
    # the certification carried over is 1.0.0's own (its promotion's validity)
    first = next(e for e in entries if e.kind == "promoted" and e.payload["version"] == "1.0.0")
    assert closed["certified_until"] == first.payload["certified_until"]
    # 1.1.0 is now an earlier certified version: it can be rolled forward again
    assert [t.version for t in certified_targets(entries, "1.0.0")] == ["1.1.0"]


def test_refusals_write_nothing_and_an_automatic_rollback_needs_only_the_failed_recertification(s3, configured):
    from prefect import flow
    from prefect.context import FlowRunContext

    from flows.rollback import RollbackRefused, RollbackResult, rollback_model
    from tasks.ledger import append_entry

    cand = configured(AUTOMATIC)
    promote_both(cand)
    # Refused before any ledger entry: a copy that changed or went missing, a version never live, the live one.
    before, kinds = pointer(s3, cand.model), [e.kind for e in ledger(s3, cand.model)]
    first = next(e for e in ledger(s3, cand.model) if e.kind == "promoted" and e.payload["version"] == "1.0.0")
    copy = next(iter(first.payload["production"]))
    original = s3.get_bytes(copy)[0]
    s3.client.put_object(Bucket=s3.bucket, Key=copy, Body=b"\x80\x05 other bytes")
    with pytest.raises(RollbackRefused, match=f"{copy} changed"):
        rollback_model(model=cand.model, to_version="1.0.0", reason="x", initiator="sam")
    s3.delete(copy)
    with pytest.raises(RollbackRefused, match=f"{copy} is missing"):
        rollback_model(model=cand.model, reason="x", initiator="sam")
    with pytest.raises(RollbackRefused, match="2.0.0 was never certified"):
        rollback_model(model=cand.model, to_version="2.0.0", reason="x", initiator="sam")
    with pytest.raises(RollbackRefused, match="1.1.0 is the live version"):
        rollback_model(model=cand.model, to_version="1.1.0", reason="x", initiator="sam")
    assert pointer(s3, cand.model) == before
    assert [e.kind for e in ledger(s3, cand.model)] == kinds
    s3.client.put_object(Bucket=s3.bucket, Key=copy, Body=original)  # the certified bytes again: it verifies

    # Automatic: only for the failed re-certification it names (and the policy's on_failure: rollback) — its
    # subflow, or named by its recertification-failed entry.
    with pytest.raises(RollbackRefused, match="not a failed re-certification"):
        rollback_model(model=cand.model, reason="drift", automatic=True, trigger_run="recert-1")

    @flow(name="recertify-stub")
    def recertify_stub() -> tuple[str, RollbackResult]:
        me = str(FlowRunContext.get().flow_run.id)  # type: ignore[union-attr]
        return me, rollback_model(model=cand.model, reason="drift", automatic=True, trigger_run=me)

    parent, result = recertify_stub()
    assert (result.version, result.automatic) == ("1.0.0", True)
    assert result.closed_by == [f"policy: on_failure rollback after the failed re-certification run {parent}"]
    closed = ledger(s3, cand.model)[-1]
    assert closed.kind == "rolled-back" and closed.payload["trigger_run"] == parent
    assert pointer(s3, cand.model).run_id == result.run_id
    append_entry(s3, cand.model, LedgerKind.RECERTIFICATION_FAILED,
                 {"run": "recert-2", "version": "1.0.0", "action": "rollback", "reason": "data drift"})
    again = rollback_model(model=cand.model, reason="drift", automatic=True, trigger_run="recert-2")
    assert again.version == "1.1.0" and pointer(s3, cand.model).run_id == again.run_id
    # 1.0.0 failed its re-certification: no longer a target
    with pytest.raises(RollbackRefused, match="1.0.0 is no longer certified"):
        rollback_model(model=cand.model, to_version="1.0.0", reason="x", initiator="sam")


def test_a_rollback_that_needs_a_sign_off_waits_for_it_unless_an_emergency_role_signed(s3, configured, tmp_path):
    from clearance.ledger.rollback import certified_targets
    from flows.rollback import rollback_model
    from tasks.person_signing import new_statement, sign
    from tasks.rollback import ROLLBACK_START

    cand = configured(SIGNED_OFF)
    promote_both(cand)
    log = tmp_path / "rollback.log"
    program = ("import typer; from clearance.app.rollback_cli import rollback; app = typer.Typer(); "
               "app.command()(rollback); app()")
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", program, cand.model, "--to", "1.0.0", "--reason", "drift",
                                    "--direct"], env=cli_env(cand, "dana"), cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT)
    run_id = rollback_run(cand.model)
    wait_for_request(s3, run_id)
    assert pointer(s3, cand.model).version == "1.1.0"
    assert decide(s3, cand, run_id, "dana").refusal is not None  # the initiator does not approve their own
    assert decide(s3, cand, run_id, "sam").accepted
    assert finish(process) == 0, log.read_text()[-3000:]
    now = pointer(s3, cand.model)
    assert (now.version, now.run_id) == ("1.0.0", run_id)
    kinds = [e.kind for e in ledger(s3, cand.model) if e.payload.get("run") == run_id]
    assert kinds == ["rollback-requested", "approval-requested", "approved", "rolling-back", "rolled-back"]

    # A verified holder of an emergency role rolls back (forward again, to 1.1.0) without a sign-off.
    key = give_ssh_keys(cand, tmp_path / "keys", people=("carl",))["carl"]
    target = certified_targets(ledger(s3, cand.model), "1.0.0")[0]
    statement = new_statement(purpose="start", model=cand.model, version=target.version, principal="carl",
                              vote="start", artifact_digest=target.artifact_digest, comment=ROLLBACK_START)
    result = rollback_model(model=cand.model, to_version="1.1.0", reason="emergency",
                            initiator_proof={"statement": statement.model_dump_json(),
                                             "signature": sign(statement, key)})
    assert result.closed_by[0].startswith("policy: emergency rollback by carl")
    assert pointer(s3, cand.model).version == "1.1.0"

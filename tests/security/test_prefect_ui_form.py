"""Findings 11 and 1 for the Prefect UI form.

Finding 11: a form decision skipped the intake, so the ``approvals-changed`` event that refreshes the
Slack and Jira tallies never went out. It now goes through :func:`tasks.approval_intake.receive_decision`
(without a wake-up: the run itself is the one waiting).

Finding 1: the approver *types* a principal id into the form; nothing proves it. The decision is a
claimed identity (``prefect-ui:<typed id>``), so in a tier that counts only verified decisions two forms
typed as 'sam' and 'bea' approve nothing — shown on a real Prefect run.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from uuid import UUID

import pytest
import yaml

from clearance.approvals import ApprovalRecord, ApprovalRequest, Outcome, RefusalReason, Vote
from clearance.config.schema import Assurance, Channel, Principals
from clearance.core.keys import approvals_key, run_index_key
from tests.fakes.memory_store import MemoryStore
from tests.integration.promotion_kit import (
    POLICY_HIGH,
    PRINCIPALS,
    REPO,
    cli_env,
    find_run,
    make_candidate,
    wait_for_request,
    wait_state,
)

DIGEST = "sha256:" + "b" * 64


class Recorder:
    """A notifier that keeps every event it is shown (as Slack and Jira would be shown them)."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list = []

    def handle(self, event) -> None:
        self.events.append(event)


@pytest.fixture
def channel(monkeypatch):
    """The store, the one channel and the wake-ups the Prefect UI form's task sees."""
    import tasks.approval_intake
    import tasks.channels
    import tasks.signoff

    store = MemoryStore()
    recorder = Recorder()
    woken: list[str] = []
    monkeypatch.setattr(tasks.signoff, "store", lambda: store)
    monkeypatch.setattr(tasks.channels, "active_notifiers", lambda settings=None: [recorder])
    monkeypatch.setattr(tasks.approval_intake, "wake_run", lambda run_id, **_: woken.append(run_id) or True)
    return store, recorder, woken


def open_request(store: MemoryStore, assurance: Assurance = Assurance.CLAIMED) -> ApprovalRequest:
    from tasks.signoff import open_approval

    now = store.server_time()
    request = ApprovalRequest(
        run_id=str(uuid.uuid4()), model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
        evidence_digest="e" * 64, required_roles={"security": 1, "business": 1}, excluded_principals=["dana"],
        initiator="dana", channels=[Channel.PREFECT_UI, Channel.CLI], opened_at=now, deadline=now + timedelta(hours=1),
        assurance=assurance, initiator_assurance=assurance)  # a verified tier's run was started verified
    open_approval.fn(request)
    assert store.head(run_index_key(request.run_id)) is not None
    return request


def stored(store, request: ApprovalRequest) -> ApprovalRecord:
    return ApprovalRecord.model_validate_json(
        store.get_bytes(approvals_key(request.model, request.version, request.run_id))[0])


def form(request: ApprovalRequest, typed: str, vote: Vote = Vote.APPROVE, pause_key: str = "sign-off-1"):
    from tasks.signoff import submit_form_decision

    return submit_form_decision.fn(request.run_id, Principals.model_validate({"principals": PRINCIPALS}), typed,
                                   vote, "via UI", DIGEST, pause_key)


def test_a_form_decision_goes_through_the_intake_and_refreshes_every_channels_tally(channel) -> None:
    store, recorder, woken = channel
    request = open_request(store)
    store.advance(timedelta(minutes=7))  # the store's clock, which times the decision
    assert form(request, "sam") is None
    record = stored(store, request)
    (decision,) = record.decisions
    assert (decision.principal, decision.channel, decision.identity, decision.assurance) == (
        "sam", Channel.PREFECT_UI, "prefect-ui:sam", Assurance.CLAIMED)
    assert decision.at == store.server_time() and decision.proof is not None and decision.proof.kind == "service"
    # The event every tally message (Slack, Jira) is refreshed from, carrying the record as written.
    assert [(e.kind, e.run_id) for e in recorder.events] == [("approvals-changed", request.run_id)]
    assert recorder.events[0].record.decisions == record.decisions
    # No wake-up: the run that showed the form is the one waiting, and it reads the record next.
    assert woken == []
    # The second role completes the quorum through the same path; still no wake-up, one more event.
    assert form(request, "bea", pause_key="sign-off-2") is None
    assert stored(store, request).outcome is Outcome.APPROVED
    assert [e.kind for e in recorder.events] == ["approvals-changed"] * 2 and woken == []


def test_a_typed_name_is_a_claimed_identity_that_a_verified_tier_refuses(channel) -> None:
    store, recorder, _ = channel
    request = open_request(store, Assurance.VERIFIED)
    refusals = [form(request, who, pause_key=f"sign-off-{n}") for n, who in enumerate(("sam", "bea"), 1)]
    assert [r.reason if r else None for r in refusals] == [RefusalReason.ASSURANCE_TOO_LOW] * 2
    record = stored(store, request)
    assert record.decisions == [] and record.outcome is Outcome.PENDING
    assert [(r.identity, r.channel) for r in record.refusals] == [
        ("prefect-ui:sam", Channel.PREFECT_UI), ("prefect-ui:bea", Channel.PREFECT_UI)]


# --------------------------------------------------------------------------- on a real Prefect run


def _wait_for_refusal(s3, key: str, identity: str, timeout: float = 120) -> ApprovalRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = ApprovalRecord.model_validate_json(s3.get_bytes(key)[0])
        if any(r.identity == identity for r in record.refusals) or any(d.identity == identity
                                                                         for d in record.decisions):
            return record
        time.sleep(0.3)
    raise TimeoutError(f"no decision or refusal of {identity} in {key}")


def _cancel(run_id: str) -> None:
    from prefect import get_client
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Cancelled(message="test over"), force=True)


@pytest.mark.integration
def test_two_typed_names_do_not_approve_a_verified_tier_promotion(s3, tmp_path) -> None:
    from prefect.flow_runs import resume_flow_run

    from tasks.promotion import read_pointer
    from tasks.signing import write_key_pair

    policy = copy.deepcopy(POLICY_HIGH)
    policy["approvals"]["assurance"] = "verified"
    cand = make_candidate(tmp_path, s3, policy=policy)
    # The initiator starts the run signed (a verified tier signs off only runs with a known initiator),
    # so the only thing the forms below lack is a proven identity of their own.
    dana_key = tmp_path / "dana-key"
    people = copy.deepcopy(PRINCIPALS)
    people[0]["ssh_keys"] = [write_key_pair(dana_key).line]
    (cand.config_dir / "principals.yaml").write_text(yaml.safe_dump({"principals": people}))
    env = cli_env(cand, "dana")
    env.pop("CLEARANCE_SSH_KEY", None)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "clearance", "promote", cand.model, "1.0.0", "--direct",
                                 "--key", str(dana_key)], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    run_id = None
    try:
        run_id = find_run(cand.model, "1.0.0")
        wait_for_request(s3, run_id)
        key = approvals_key(cand.model, "1.0.0", run_id)
        request = ApprovalRecord.model_validate_json(s3.get_bytes(key)[0]).request
        assert (request.assurance, request.initiator_assurance) == (Assurance.VERIFIED, Assurance.VERIFIED), \
            log.read_text()[-3000:]

        for who in ("sam", "bea"):  # security and business: together they would be the quorum
            resume_flow_run(UUID(run_id), run_input={"approver": who, "decision": "approve", "comment": "via UI"})
            _wait_for_refusal(s3, key, f"prefect-ui:{who}")
            assert wait_state(run_id, {"PAUSED", "COMPLETED", "FAILED"}) == "PAUSED"  # still waiting

        record = ApprovalRecord.model_validate_json(s3.get_bytes(key)[0])
        assert record.decisions == [] and record.outcome is Outcome.PENDING
        assert [(r.identity, r.channel, r.reason) for r in record.refusals] == [
            ("prefect-ui:sam", Channel.PREFECT_UI, RefusalReason.ASSURANCE_TOO_LOW),
            ("prefect-ui:bea", Channel.PREFECT_UI, RefusalReason.ASSURANCE_TOO_LOW)]
        assert proc.poll() is None  # the run has not finished: nothing approved it
        assert read_pointer(s3, "production", cand.model).pointer is None
        assert not s3.list_keys(f"production/{cand.model}/")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # never mask what the test found with a hung shutdown
            proc.kill()
            proc.wait(timeout=30)
        if run_id is not None:
            _cancel(run_id)

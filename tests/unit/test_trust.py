"""A stored approvals record counts only what its proofs and the configs support (finding 3, offline)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from clearance.approvals import ApprovalRecord, ApprovalRequest, Decision, Outcome, Proof, Vote
from clearance.approvals.trust import trusted_record
from clearance.config.schema import Assurance, Channel, Principals
from clearance.core.clock import utcnow
from clearance.identity import sshsig
from clearance.identity.statements import decision_payload
from tasks.approvals_record import open_record, read_record, submit_decision
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

SERVICE = FileSigner(ed25519.Ed25519PrivateKey.generate())
DIGEST = "a" * 64


def principals(**keys: str) -> Principals:
    return Principals.model_validate({"principals": [
        {"id": "dana", "roles": []},
        {"id": "sam", "roles": ["security"], "ssh_keys": [keys["sam"]] if "sam" in keys else []},
        {"id": "bea", "roles": ["business"], "ssh_keys": [keys["bea"]] if "bea" in keys else []},
    ], "service_keys": [SERVICE.public_key.line]})


def request(assurance: Assurance = Assurance.CLAIMED, initiator: Assurance = Assurance.VERIFIED) -> ApprovalRequest:
    now = utcnow()
    return ApprovalRequest(run_id="run-1", model="m", version="1", tier="high", artifact_digest=DIGEST,
                           evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                           excluded_principals=["dana"], initiator="dana", channels=list(Channel),
                           opened_at=now, deadline=now + timedelta(hours=1), assurance=assurance,
                           initiator_assurance=initiator)


def record_with(req: ApprovalRequest, people: Principals, *who: str) -> tuple[MemoryStore, str]:
    store = MemoryStore()
    open_record(store, req)
    key = "evidence/m/1/run-1/approvals.json"
    for person in who:
        result = submit_decision(store, key, principal=people.by_id(person), identity=f"slack:T1/{person}",
                                 channel=Channel.SLACK, vote=Vote.APPROVE, artifact_digest=DIGEST,
                                 assurance=Assurance.VERIFIED, signer=SERVICE, principals=people)
        assert result.accepted, result.refusal
    return store, key


def check(store: MemoryStore, key: str, req: ApprovalRequest, people: Principals):
    stored = read_record(store, key)[0]
    return trusted_record(stored, req, people, [SERVICE.public_key], utcnow())


def test_attested_decisions_count_and_close_the_request() -> None:
    people = principals()
    store, key = record_with(request(), people, "sam", "bea")
    record, problems = check(store, key, request(), people)
    assert problems == [] and record.outcome is Outcome.APPROVED


def test_a_decision_invented_in_the_bucket_counts_for_nothing_and_is_named() -> None:
    people = principals()
    req = request()
    store, key = record_with(req, people, "sam")
    stored = read_record(store, key)[0]
    forged = Decision(principal="bea", channel=Channel.SLACK, vote=Vote.APPROVE, artifact_digest=DIGEST,
                      evidence_digest="e" * 64, roles=["business"], assurance=Assurance.VERIFIED)
    stranger = ed25519.Ed25519PrivateKey.generate()  # signed, but not by a trusted service key
    other = forged.model_copy(update={"principal": "bea", "id": "x" * 32, "proof": Proof(
        kind="service", signature=sshsig.sign(stranger, decision_payload(forged.model_dump(mode="json")),
                                              "clearance-service"))})
    tampered = stored.model_copy(update={"decisions": [*stored.decisions, forged, other],
                                         "outcome": Outcome.APPROVED, "closed_by": ["sam", "bea"]})
    record, problems = trusted_record(tampered, req, people, [SERVICE.public_key], utcnow())
    assert record.outcome is Outcome.PENDING  # the stored "approved" is not taken at its word
    assert [d.principal for d in record.decisions] == ["sam"]
    assert len(problems) == 2 and "carries no proof" in problems[0] and "not a key" in problems[1]


def test_editing_a_signed_decision_breaks_its_proof() -> None:
    people = principals()
    req = request()
    store, key = record_with(req, people, "sam", "bea")
    stored = read_record(store, key)[0]
    edited = stored.decisions[1].model_copy(update={"comment": "changed afterwards"})
    record, problems = trusted_record(stored.model_copy(update={"decisions": [stored.decisions[0], edited]}),
                                      req, people, [SERVICE.public_key], utcnow())
    assert record.outcome is Outcome.PENDING and "service signature" in problems[0]


def test_the_request_and_roles_come_from_the_caller_not_the_bucket() -> None:
    people = principals()
    req = request()
    store, key = record_with(req, people, "sam")
    stored = read_record(store, key)[0]
    weakened = stored.model_copy(update={"request": req.model_copy(update={"required_roles": {"security": 1}})})
    record, _ = trusted_record(weakened, req, people, [SERVICE.public_key], utcnow())
    assert record.outcome is Outcome.PENDING and record.request == req


def test_claimed_decisions_do_not_count_in_a_verified_tier() -> None:
    people = principals()
    claimed_request = request()
    store = MemoryStore()
    open_record(store, claimed_request)
    key = "evidence/m/1/run-1/approvals.json"
    for person in ("sam", "bea"):
        submit_decision(store, key, principal=people.by_id(person), identity=f"os:{person}", channel=Channel.CLI,
                        vote=Vote.APPROVE, artifact_digest=DIGEST, signer=SERVICE, principals=people)
    record, problems = check(store, key, request(Assurance.VERIFIED), people)
    assert record.outcome is Outcome.PENDING and all("claimed" in p for p in problems) and len(problems) == 2


def test_an_unverified_start_opens_no_sign_off_in_a_verified_tier() -> None:
    people = principals()
    req = request(Assurance.VERIFIED, initiator=Assurance.CLAIMED)
    store = MemoryStore()
    open_record(store, req)
    result = submit_decision(store, "evidence/m/1/run-1/approvals.json", principal=people.by_id("sam"),
                             identity="slack:T1/sam", channel=Channel.SLACK, vote=Vote.APPROVE, artifact_digest=DIGEST,
                             assurance=Assurance.VERIFIED, signer=SERVICE, principals=people)
    assert result.refusal is not None and result.refusal.reason.value == "start_unverified"
    record, problems = trusted_record(ApprovalRecord(request=req), req, people,
                                      [SERVICE.public_key], utcnow())
    assert record.outcome is Outcome.PENDING and problems == []


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH client not installed")
def test_a_person_signed_decision_is_verified_and_bound_to_what_was_signed(tmp_path: Path) -> None:
    from tasks.person_signing import new_statement, sign

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "sam")], check=True)
    people = principals(sam=(tmp_path / "sam.pub").read_text())
    req = request(Assurance.VERIFIED)
    store = MemoryStore()
    open_record(store, req)
    key = "evidence/m/1/run-1/approvals.json"
    statement = new_statement(run_id="run-1", principal="sam", vote="approve", artifact_digest=DIGEST, comment="ok")
    signature = sign(statement, tmp_path / "sam")
    mismatch = submit_decision(store, key, principal=people.by_id("sam"), identity="ssh", channel=Channel.CLI,
                               vote=Vote.APPROVE, artifact_digest=DIGEST, comment="not what was signed",
                               signed=(statement, signature), principals=people, signer=SERVICE)
    assert mismatch.refusal is not None and mismatch.refusal.reason.value == "bad_proof"
    as_bea = submit_decision(store, key, principal=people.by_id("bea"), identity="ssh", channel=Channel.CLI,
                             vote=Vote.APPROVE, artifact_digest=DIGEST, comment="ok",
                             signed=(statement, signature), principals=people, signer=SERVICE)
    assert as_bea.refusal is not None and "signed as sam" in as_bea.refusal.message
    counted = submit_decision(store, key, principal=people.by_id("sam"), identity="ssh", channel=Channel.CLI,
                              vote=Vote.APPROVE, artifact_digest=DIGEST, comment="ok", signed=(statement, signature),
                              principals=people, signer=SERVICE)
    assert counted.decision is not None and counted.decision.assurance is Assurance.VERIFIED
    record, problems = check(store, key, req, people)
    assert problems == [] and [d.principal for d in record.decisions] == ["sam"]


def test_without_a_service_key_only_person_signed_decisions_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from clearance.settings import get_settings

    people = principals()
    store = MemoryStore()
    open_record(store, request())
    monkeypatch.delenv("CLEARANCE_SERVICE_KEY_FILE", raising=False)
    get_settings.cache_clear()
    try:
        result = submit_decision(store, "evidence/m/1/run-1/approvals.json", principal=people.by_id("sam"),
                                 identity="os:sam", channel=Channel.CLI, vote=Vote.APPROVE, artifact_digest=DIGEST)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert result.refusal is not None and "no service key" in result.refusal.message


def test_a_forged_outcome_does_not_close_the_request_to_real_decisions() -> None:
    import json

    people = principals()
    req = request()
    store, key = record_with(req, people)
    body, etag = store.get_bytes(key)
    document = json.loads(body)
    document["decisions"].append({"principal": "bea", "channel": "slack", "vote": "approve", "roles": ["business"],
                                  "artifact_digest": DIGEST, "evidence_digest": "e" * 64, "assurance": "verified"})
    document.update(outcome="approved", closed_by=["bea"])
    store.put_if_match(key, json.dumps(document).encode(), etag)
    result = submit_decision(store, key, principal=people.by_id("sam"), identity="slack:T1/sam", channel=Channel.SLACK,
                             vote=Vote.APPROVE, artifact_digest=DIGEST, assurance=Assurance.VERIFIED, signer=SERVICE,
                             principals=people)
    assert result.accepted and result.record.outcome is Outcome.PENDING
    assert [d.principal for d in read_record(store, key)[0].decisions] == ["sam"]  # the forgery is gone

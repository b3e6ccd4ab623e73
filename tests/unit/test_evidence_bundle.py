"""The evidence bundle: sealing a run's evidence, and the audit that finds any change to it."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from clearance.approvals import ApprovalRecord
from clearance.config.schema import Principals
from gates.base import CheckResult, GateResult, Status
from tasks.bundle import audit_evidence, seal
from tasks.ledger import append_entry, read_ledger
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

PREFIX = "evidence/m/1.0.0/run-1/"
SERVICE = FileSigner(ed25519.Ed25519PrivateKey.generate())
INTRUDER = FileSigner(ed25519.Ed25519PrivateKey.generate())
PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "dana", "roles": []}, {"id": "sam", "roles": ["security"]}, {"id": "bea", "roles": ["business"]},
], "service_keys": [SERVICE.public_key.line]})


def sealed_run() -> MemoryStore:
    """A run with a gate result, reports and living state, sealed and recorded as promoted."""
    store = MemoryStore()
    append_entry(store, "m", "started", {"run": "run-1", "version": "1.0.0"})
    result = GateResult.from_checks("g", "1", [CheckResult(id="c", status=Status.PASS, observed=1)])
    store.put_if_absent(PREFIX + "gate-g.json", result.to_evidence_json())
    append_entry(store, "m", "gate", {"run": "run-1", "gate": "g", "status": "pass", "digest": result.digest(),
                                      "evidence": PREFIX + "gate-g.json"})
    store.put_if_absent(PREFIX + "drift.png", b"\x89PNG fake")
    store.put_if_absent(PREFIX + "report.md", b"# m 1.0.0: PROMOTED\n")
    store.put_if_absent(PREFIX + "report.html", b"<!DOCTYPE html><title>m</title>")
    store.put_if_absent(PREFIX + "approvals.json", b'{"decisions": []}')
    sealed = seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=read_ledger(store, "m"))
    append_entry(store, "m", "promoted", {"run": "run-1", "version": "1.0.0", **sealed})
    return store


def audit(store: MemoryStore) -> tuple[int, list[str]]:
    return audit_evidence(store, read_ledger(store, "m"))


def test_an_intact_run_passes_and_the_bundle_lists_what_it_anchors() -> None:
    store = sealed_run()
    assert audit(store) == (1, [])
    bundle = json.loads(store.objects[PREFIX + "bundle.json"])
    assert [f["name"] for f in bundle["files"]] == ["approvals-at-seal.json", "drift.png", "gate-g.json",
                                                    "report.html", "report.md"]
    assert bundle["living"] == ["approvals.json"]
    assert store.objects[PREFIX + "approvals-at-seal.json"] == store.objects[PREFIX + "approvals.json"]
    assert [e["kind"] for e in bundle["ledger"]] == ["started", "gate"]


def test_living_state_may_change_after_sealing() -> None:
    store = sealed_run()
    store.objects[PREFIX + "approvals.json"] = b'{"decisions": [], "refusals": ["late click"]}'
    store.objects[PREFIX + "slack.json"] = b"{}"
    assert audit(store) == (1, [])
    assert store.objects[PREFIX + "approvals-at-seal.json"] == b'{"decisions": []}'  # the record at the end


@pytest.mark.parametrize("change,expected", [
    (lambda o: o.__setitem__(PREFIX + "report.html", b"<p>all fine</p>"), f"{PREFIX}report.html: altered"),
    (lambda o: o.pop(PREFIX + "drift.png"), f"{PREFIX}drift.png: removed"),
    (lambda o: o.__setitem__(PREFIX + "approvals-at-seal.json", b'{"decisions": ["forged"]}'),
     f"{PREFIX}approvals-at-seal.json: altered"),
    (lambda o: o.__setitem__(PREFIX + "waiver.json", b"{}"), f"{PREFIX}waiver.json: added after"),
    (lambda o: o.__setitem__(PREFIX + "bundle.json", o[PREFIX + "bundle.json"].replace(b"drift", b"drift2")),
     f"{PREFIX}bundle.json: bundle differs from the digest ledger entry 3 recorded"),
    (lambda o: o.__setitem__(PREFIX + "gate-g.json", o[PREFIX + "gate-g.json"].replace(b'"pass"', b'"fail"')),
     f"{PREFIX}gate-g.json: gate result differs from the digest ledger entry 2 recorded"),
    (lambda o: o.pop(PREFIX + "bundle.json"), f"{PREFIX}bundle.json: evidence bundle of ledger entry 3 is missing"),
])
def test_every_change_to_sealed_evidence_is_named(change, expected: str) -> None:
    store = sealed_run()
    change(store.objects)
    _, problems = audit(store)
    assert any(p.startswith(expected) for p in problems), problems


def test_sealing_is_idempotent_and_refuses_changed_evidence() -> None:
    store = sealed_run()
    first = json.loads(store.objects[PREFIX + "bundle.json"])
    ledger = [e for e in read_ledger(store, "m") if e.kind != "promoted"]
    again = seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=ledger)
    assert again == {k: v for k, v in read_ledger(store, "m")[-1].payload.items() if k.startswith("bundle")}
    assert json.loads(store.objects[PREFIX + "bundle.json"]) == first
    store.objects[PREFIX + "late.json"] = b"{}"
    with pytest.raises(ValueError, match="changed after it was sealed"):
        seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=ledger)


def test_a_rewritten_chain_no_longer_holds_the_entries_the_bundle_names() -> None:
    """Someone rewrites the run's start (and re-hashes every later entry so the chain looks intact):
    the sealed bundle still names the original hashes."""
    from clearance.ledger import LedgerEntry
    from tasks.ledger import ledger_key

    store = sealed_run()
    previous = None
    for entry in read_ledger(store, "m"):
        payload = entry.payload | ({"version": "9.9.9"} if entry.seq == 1 else {})
        previous = LedgerEntry.next_after(previous, entry.kind, payload, at=entry.at)
        store.objects[ledger_key("m", entry.seq)] = previous.model_dump_json().encode()
    _, problems = audit(store)
    assert f"{PREFIX}bundle.json: names ledger entry 1 (started) that the chain does not hold" in problems


# --------------------------------------------------------------------------- every decision re-verified


def approved_run(*deciders: str) -> tuple[MemoryStore, ApprovalRecord]:
    """A run whose approvals record holds service-attested decisions by ``deciders``, sealed."""
    from clearance.approvals import Vote
    from clearance.config.schema import Assurance, Channel
    from tasks.approvals_record import open_record, submit_decision

    store = MemoryStore()
    append_entry(store, "m", "started", {"run": "run-1", "version": "1.0.0"})
    open_record(store, approval_request())
    for who in deciders:
        result = submit_decision(store, PREFIX + "approvals.json", principal=PRINCIPALS.by_id(who),
                                 identity=f"slack:T1/{who}", channel=Channel.SLACK, vote=Vote.APPROVE,
                                 artifact_digest="a" * 64, assurance=Assurance.VERIFIED, signer=SERVICE,
                                 principals=PRINCIPALS)
        assert result.accepted, result.refusal
    sealed = seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=read_ledger(store, "m"))
    append_entry(store, "m", "promoted", {"run": "run-1", "version": "1.0.0", **sealed})
    return store, ApprovalRecord.model_validate_json(store.objects[PREFIX + "approvals-at-seal.json"])


def approval_request():
    from datetime import timedelta

    from clearance.approvals import ApprovalRequest
    from clearance.config.schema import Channel
    from clearance.core.clock import utcnow

    now = utcnow()
    return ApprovalRequest(run_id="run-1", model="m", version="1.0.0", tier="high", artifact_digest="a" * 64,
                           evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                           excluded_principals=["dana"], initiator="dana", channels=list(Channel),
                           opened_at=now, deadline=now + timedelta(hours=1))


def audit_records(store: MemoryStore, trusted=None) -> tuple[int, list[str]]:
    from clearance.core.clock import utcnow
    from tasks.bundle import audit_approvals

    keys = [SERVICE.public_key] if trusted is None else trusted
    return audit_approvals(store, "m", read_ledger(store, "m"), PRINCIPALS, keys, utcnow())


def test_every_decision_of_every_run_verifies() -> None:
    store, record = approved_run("sam", "bea")
    assert record.outcome.value == "approved" and len(record.decisions) == 2
    assert audit_records(store) == (2, [])  # the sealed record and the living one


def test_an_invented_decision_is_named_and_the_outcome_it_claims_refuted() -> None:
    from clearance.approvals import Decision, Outcome, Vote
    from clearance.config.schema import Channel

    store, record = approved_run("sam")
    assert record.outcome is Outcome.PENDING
    invented = Decision(id="deadbeef" * 4, principal="bea", channel=Channel.CLI, vote=Vote.APPROVE,
                        roles=["business"], artifact_digest="a" * 64, evidence_digest="e" * 64)
    forged = record.model_copy(update={"decisions": [*record.decisions, invented], "outcome": Outcome.APPROVED,
                                       "closed_at": record.request.opened_at})
    store.objects[PREFIX + "approvals-at-seal.json"] = forged.model_dump_json().encode()
    _, problems = audit_records(store)
    assert problems == [
        f"{PREFIX}approvals-at-seal.json: decision deadbeef (approve by bea via cli) not counted: it carries no "
        "proof (written outside clearance?)",
        f"{PREFIX}approvals-at-seal.json: the record says approved, but its verified decisions make it pending"]
    # the bundle's digests name the same edit
    assert f"{PREFIX}approvals-at-seal.json: altered after the run sealed its evidence" in audit(store)[1]


def test_a_decision_attested_by_another_key_is_named_in_the_living_record() -> None:
    """The living record is outside the bundle (it changes by CAS); its proofs are what protect it."""
    from clearance.approvals import Decision, Proof, Vote
    from clearance.config.schema import Channel
    from clearance.identity.statements import decision_payload

    store, record = approved_run("sam")
    draft = Decision(id="c0ffee00" * 4, principal="bea", channel=Channel.SLACK, vote=Vote.APPROVE,
                     roles=["business"], artifact_digest="a" * 64, evidence_digest="e" * 64)
    proof = Proof(kind="service", signature=INTRUDER.sign(decision_payload(draft.model_dump(mode="json"))))
    living = record.model_copy(update={"decisions": [*record.decisions, draft.model_copy(update={"proof": proof})]})
    store.objects[PREFIX + "approvals.json"] = living.model_dump_json().encode()
    _, problems = audit_records(store)
    (problem,) = problems
    assert problem.startswith(f"{PREFIX}approvals.json: decision c0ffee00 (approve by bea via slack) not counted: "
                              f"service signature: signed by {INTRUDER.public_key.fingerprint}")
    assert audit(store) == (1, [])  # the digests cannot see it: the living record is not sealed


def test_decisions_fail_when_no_service_key_is_trusted() -> None:
    store, _ = approved_run("sam")
    _, problems = audit_records(store, trusted=[])
    assert len(problems) == 2 and all("no service key is trusted" in p for p in problems)

"""Rollback decisions (clearance/ledger/rollback.py), its store side (tasks/rollback.py) and the recovery of a
rollback trail (tasks/recovery.py), on plain entries and an in-memory store."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from prefect.client.schemas.objects import StateType

from clearance.config.schema import ApprovalPolicy, Principals, RoleQuorum, RollbackPolicy
from clearance.core import keys
from clearance.core.ledger_kinds import LedgerKind
from clearance.identity.statements import DecisionStatement
from clearance.ledger import LedgerEntry, verify_chain
from clearance.ledger.rollback import (
    Target,
    automatic_problem,
    certified_targets,
    certified_until_of,
    choose_target,
    rollback_authority,
)
from tasks.initiator import Initiator
from tasks.ledger import append_entry, read_ledger
from tasks.promotion import PointerMovedError, ProductionPointer, move_pointer, not_live_runs, read_pointer
from tasks.recovery import append_closing, close_after_failure, recover_model
from tasks.rollback import CopiesChangedError, for_rollback, move_back, rollback_targets, verify_copies
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

MODEL = "churn"
SIGNER = FileSigner(ed25519.Ed25519PrivateKey.generate())
RUN_1, RUN_2, RUN_R = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222",
                       "33333333-3333-3333-3333-333333333333")
UNTIL = datetime(2027, 3, 1, tzinfo=UTC)


def body(version: str) -> bytes:
    return b"\x80\x05 model " + version.encode()


def copy_key(version: str) -> str:
    return keys.production_key(MODEL, version, keys.candidate_key(MODEL, version, "model.joblib"))


def production(version: str) -> dict[str, str]:
    return {copy_key(version): hashlib.sha256(body(version)).hexdigest()}


def entry(seq: int, kind: str, **payload) -> LedgerEntry:
    return LedgerEntry(seq=seq, prev_hash="x", kind=kind, payload=payload)


def history() -> list[LedgerEntry]:
    """0.9.0 promoted, 1.0.0 promoted (certified until UNTIL), then 1.1.0 promoted (live)."""
    return [
        entry(1, "promoted", run="r09", version="0.9.0", production=production("0.9.0"), artifact_digest="d09"),
        entry(2, "promoted", run=RUN_1, version="1.0.0", production=production("1.0.0"), artifact_digest="d10",
              certified_until=UNTIL.isoformat()),
        entry(3, "started", run=RUN_2, version="1.1.0"),
        entry(4, "promoted", run=RUN_2, version="1.1.0", production=production("1.1.0"), artifact_digest="d11"),
    ]


# --------------------------------------------------------------------------- which versions, pure


def test_targets_are_earlier_live_versions_newest_first_without_the_live_one() -> None:
    targets = certified_targets(history(), "1.1.0")
    assert [t.version for t in targets] == ["1.0.0", "0.9.0"]
    assert targets[0].certified_run == RUN_1 and targets[0].artifact_digest == "d10"
    assert targets[0].production == production("1.0.0") and targets[0].certified_until == UNTIL
    assert targets[1].certified_until is None


def test_a_rolled_back_entry_is_a_certification_and_a_recertification_extends_it() -> None:
    later = UNTIL + timedelta(days=90)
    entries = [*history(), entry(5, "rolled-back", run=RUN_R, version="1.0.0", production=production("1.0.0"),
                                 artifact_digest="d10", certified_until=UNTIL.isoformat()),
               entry(6, "recertified", run="rc", version="1.0.0", certified_until=later.isoformat())]
    assert certified_until_of(entries, "1.0.0") == later
    targets = certified_targets(entries, "1.0.0")
    assert [(t.version, t.certified_run) for t in targets] == [("1.1.0", RUN_2), ("0.9.0", "r09")]


@pytest.mark.parametrize("revoking", ["recertification-failed", "lapsed"])
def test_a_version_whose_certification_was_revoked_is_no_target(revoking: str) -> None:
    entries = [*history()[:2], entry(3, revoking, run="rc", version="1.0.0"), *history()[2:]]
    assert [t.version for t in certified_targets(entries, "1.1.0")] == ["0.9.0"]
    refusal = choose_target(entries, "1.1.0", "1.0.0", {})
    assert isinstance(refusal, str) and "no longer certified" in refusal and revoking in refusal


def test_choose_names_why_it_refuses() -> None:
    entries = history()
    ok: dict[str, list[str]] = {"1.0.0": [], "0.9.0": []}
    never = choose_target(entries, "1.1.0", "2.0.0", ok)
    assert isinstance(never, str) and "2.0.0 was never certified" in never
    live = choose_target(entries, "1.1.0", "1.1.0", ok)
    assert isinstance(live, str) and "1.1.0 is the live version" in live
    broken = choose_target(entries, "1.1.0", "1.0.0", {"1.0.0": [f"{copy_key('1.0.0')} is missing"]})
    assert isinstance(broken, str) and "no longer verifies" in broken and copy_key("1.0.0") in broken
    nothing = choose_target(entries, None, None, ok)
    assert isinstance(nothing, str) and "nothing is live" in nothing


def test_choose_takes_the_newest_target_whose_copies_verify() -> None:
    entries = history()
    picked = choose_target(entries, "1.1.0", None, {"1.0.0": ["changed"], "0.9.0": []})
    assert isinstance(picked, Target) and picked.version == "0.9.0"
    explicit = choose_target(entries, "1.1.0", "1.0.0", {"1.0.0": []})
    assert isinstance(explicit, Target) and explicit.version == "1.0.0"
    none = choose_target(entries, "1.1.0", None, {"1.0.0": ["a changed"], "0.9.0": ["b is missing"]})
    assert isinstance(none, str) and "1.0.0: a changed" in none and "0.9.0: b is missing" in none
    first_only = choose_target(entries[:2], "1.0.0", None, {})
    assert isinstance(first_only, str) and "no earlier certified version" in first_only


# --------------------------------------------------------------------------- on whose authority, pure


PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "ops", "email": "ops@example.com", "roles": ["sre"]},
    {"id": "sam", "email": "sam@example.com", "roles": ["security"]},
]})
TIER = ApprovalPolicy(roles={"security": RoleQuorum(min=1), "business": RoleQuorum(min=1)})


def test_the_rollback_sign_off_is_its_own_or_the_tiers() -> None:
    lighter = ApprovalPolicy(roles={"security": RoleQuorum(min=1)})
    own = rollback_authority(RollbackPolicy(approvals=lighter), TIER, PRINCIPALS, initiator="sam", verified=True,
                             automatic=False, trigger_run=None)
    assert own.closed_by is None and set(own.approvals.roles) == {"security"}
    tier = rollback_authority(RollbackPolicy(), TIER, PRINCIPALS, initiator="sam", verified=True, automatic=False,
                              trigger_run=None)
    assert tier.closed_by is None and set(tier.approvals.roles) == {"security", "business"}
    none = rollback_authority(RollbackPolicy(approvals=ApprovalPolicy(roles={})), TIER, PRINCIPALS, initiator="sam",
                              verified=False, automatic=False, trigger_run=None)
    assert none.closed_by == "policy: no sign-off for a rollback"


def test_an_emergency_role_counts_only_for_a_verified_initiator() -> None:
    policy = RollbackPolicy(emergency_roles=["sre"])
    verified = rollback_authority(policy, TIER, PRINCIPALS, initiator="ops", verified=True, automatic=False,
                                  trigger_run=None)
    assert verified.closed_by is not None and "emergency" in verified.closed_by and "sre" in verified.closed_by
    claimed = rollback_authority(policy, TIER, PRINCIPALS, initiator="ops", verified=False, automatic=False,
                                 trigger_run=None)
    assert claimed.closed_by is None
    other = rollback_authority(policy, TIER, PRINCIPALS, initiator="sam", verified=True, automatic=False,
                               trigger_run=None)
    assert other.closed_by is None


def test_an_automatic_rollback_needs_the_failed_recertification_and_the_policy() -> None:
    auto = rollback_authority(RollbackPolicy(), TIER, PRINCIPALS, initiator="clearance", verified=False,
                              automatic=True, trigger_run="rc")
    assert auto.closed_by is not None and "on_failure rollback" in auto.closed_by and "rc" in auto.closed_by
    failed = [*history(), entry(5, "recertification-failed", run="rc", version="1.1.0", action="rollback")]
    assert automatic_problem(failed, "rc", "1.1.0", policy_rolls_back=True, subflow_of_trigger=False) is None
    assert automatic_problem(history(), "rc", "1.1.0", policy_rolls_back=True, subflow_of_trigger=True) is None
    assert "not a failed re-certification" in (automatic_problem(history(), "rc", "1.1.0", policy_rolls_back=True,
                                                                 subflow_of_trigger=False) or "")
    assert "on_failure: rollback" in (automatic_problem(failed, "rc", "1.1.0", policy_rolls_back=False,
                                                        subflow_of_trigger=True) or "")
    assert "trigger_run" in (automatic_problem(failed, None, "1.1.0", policy_rolls_back=True,
                                               subflow_of_trigger=True) or "")


def test_only_a_start_signed_for_a_rollback_of_that_digest_makes_a_verified_initiator() -> None:
    from clearance.config.schema import Assurance

    target = certified_targets(history(), "1.1.0")[0]
    starter = Initiator(principal="ops", assurance=Assurance.VERIFIED, artifact_digest=target.artifact_digest)

    def proof(comment: str) -> dict[str, str]:
        statement = DecisionStatement(purpose="start", model=MODEL, version="1.0.0", principal="ops", vote="start",
                                      artifact_digest=target.artifact_digest, comment=comment,
                                      signed_at=datetime.now(UTC), nonce="n" * 16)
        return {"statement": statement.model_dump_json(), "signature": "sig"}

    assert for_rollback(starter, proof("rollback"), target).assurance is Assurance.VERIFIED
    promotion = for_rollback(starter, proof(""), target)
    assert promotion.assurance is Assurance.CLAIMED and "not a rollback" in (promotion.problem or "")
    other = for_rollback(starter.model_copy(update={"artifact_digest": "other"}), proof("rollback"), target)
    assert other.assurance is Assurance.CLAIMED


# --------------------------------------------------------------------------- the store side


def append(store: MemoryStore, kind: str, payload: dict) -> LedgerEntry:
    return append_entry(store, MODEL, LedgerKind(kind), payload, signer=SIGNER, witnesses=[])


def live_history(store: MemoryStore) -> None:
    """1.0.0 then 1.1.0 promoted, their copies in production, the pointer on 1.1.0 (RUN_2)."""
    for version, run, previous in (("1.0.0", RUN_1, None), ("1.1.0", RUN_2, RUN_1)):
        store.put_if_absent(copy_key(version), body(version))
        append(store, "started", {"run": run, "version": version})
        append(store, "promoted", {"run": run, "version": version, "production": production(version),
                                   "artifact_digest": "d" + version, "replaces_run": previous})
        seen = read_pointer(store, "production", MODEL)
        move_pointer(store, "production", seen, ProductionPointer(
            model=MODEL, version=version, artifact_digest="d" + version, artifacts=production(version), run_id=run,
            previous_run_id=previous))


def test_copies_verify_and_a_changed_or_missing_one_is_named() -> None:
    store = MemoryStore()
    live_history(store)
    assert [t.version for t in rollback_targets(store, "production", MODEL)] == ["1.0.0"]
    target = certified_targets(read_ledger(store, MODEL), "1.1.0")[0]
    assert verify_copies(store, target) == []
    store.objects[copy_key("1.0.0")] = b"other bytes"
    assert verify_copies(store, target) == [f"{copy_key('1.0.0')} changed (sha256 "
                                            f"{hashlib.sha256(b'other bytes').hexdigest()[:12]}…, certified "
                                            f"{production('1.0.0')[copy_key('1.0.0')][:12]}…)"]
    assert rollback_targets(store, "production", MODEL) == []
    del store.objects[copy_key("1.0.0")]
    assert verify_copies(store, target) == [f"{copy_key('1.0.0')} is missing"]


def test_move_back_swaps_the_pointer_and_clears_a_not_live_marker() -> None:
    store = MemoryStore()
    live_history(store)
    seen = read_pointer(store, "production", MODEL)
    target = certified_targets(read_ledger(store, MODEL), "1.1.0")[0]
    store.put_if_absent(keys.not_live_key(MODEL, "1.0.0"), b'{"runs": {"x": {}}}')
    move_back(store, "production", seen, target, RUN_R, 9, "h")
    pointer = read_pointer(store, "production", MODEL).pointer
    assert pointer is not None and (pointer.version, pointer.run_id) == ("1.0.0", RUN_R)
    assert (pointer.previous_version, pointer.previous_run_id, pointer.ledger_seq) == ("1.1.0", RUN_2, 9)
    assert pointer.artifacts == production("1.0.0")
    assert not_live_runs(store, "production", MODEL, "1.0.0") == {}
    with pytest.raises(PointerMovedError):  # compare-and-swap: the pointer is no longer what was seen
        move_back(store, "production", seen, target, "another", 10, "h")


def test_move_back_checks_the_copies_again_and_moves_nothing_when_one_changed() -> None:
    store = MemoryStore()
    live_history(store)
    seen = read_pointer(store, "production", MODEL)
    target = certified_targets(read_ledger(store, MODEL), "1.1.0")[0]
    store.objects[copy_key("1.0.0")] = b"swapped"
    with pytest.raises(CopiesChangedError, match="changed"):
        move_back(store, "production", seen, target, RUN_R, 9, "h")
    assert read_pointer(store, "production", MODEL).pointer.run_id == RUN_2  # type: ignore[union-attr]


# --------------------------------------------------------------------------- recovering a rollback trail


def rollback_until(store: MemoryStore, last: str) -> LedgerEntry:
    """RUN_R's trail up to ``last`` (``approved`` or ``rolling-back``)."""
    append(store, "rollback-requested", {"run": RUN_R, "version": "1.0.0", "from_version": "1.1.0",
                                         "from_run": RUN_2, "initiator": "ops", "reason": "drift",
                                         "automatic": False, "trigger_run": None})
    approved = append(store, "approved", {"run": RUN_R, "version": "1.0.0", "decisions": []})
    if last == "approved":
        return approved
    return append(store, "rolling-back", {
        "run": RUN_R, "version": "1.0.0", "from_version": "1.1.0", "artifact_digest": "d1.0.0",
        "production": production("1.0.0"), "prefix": "production", "pointer": keys.pointer_key(MODEL),
        "pointer_etag": None, "replaces_run": RUN_2, "certified_until": UNTIL.isoformat()})


def recover(store: MemoryStore, state: StateType | None = StateType.FAILED) -> list[LedgerEntry]:
    return recover_model(store, MODEL, run_states=lambda run: state, signer=SIGNER, witnesses=[])


def test_a_rollback_the_pointer_names_is_closed_rolled_back_once() -> None:
    store = MemoryStore()
    live_history(store)
    intent = rollback_until(store, "rolling-back")
    target = certified_targets(read_ledger(store, MODEL), "1.1.0")[0]
    move_back(store, "production", read_pointer(store, "production", MODEL), target, RUN_R, intent.seq, intent.hash)
    closed = recover(store)
    assert [e.kind for e in closed] == ["rolled-back"]
    payload = closed[0].payload
    assert payload["recovered"] is True and payload["run"] == RUN_R and payload["version"] == "1.0.0"
    assert payload["replaces_run"] == RUN_2 and payload["from_version"] == "1.1.0"
    assert payload["production"] == production("1.0.0") and payload["certified_until"] == UNTIL.isoformat()
    assert payload["rollback_reason"] == "drift" and payload["automatic"] is False
    assert "ROLLED-BACK" in store.get_bytes(keys.run_prefix(MODEL, "1.0.0", RUN_R) + keys.REPORT_MD)[0].decode()
    assert recover(store) == []
    documents = {key: store.get_bytes(key)[0] for key in store.list_keys(keys.ledger_prefix(MODEL))}
    assert verify_chain(MODEL, documents, trusted_keys=[SIGNER.public_key]) == []


def test_a_rollback_that_did_not_move_gets_failed_and_its_target_is_never_marked() -> None:
    store = MemoryStore()
    live_history(store)
    rollback_until(store, "rolling-back")
    closed = recover(store, StateType.CRASHED)
    assert [e.kind for e in closed] == ["failed"] and "not_live" not in closed[0].payload
    assert store.head(keys.not_live_key(MODEL, "1.0.0")) is None
    assert recover(store, StateType.CRASHED) == []


def test_a_running_rollback_is_left_open_and_its_failure_hook_closes_it() -> None:
    store = MemoryStore()
    live_history(store)
    rollback_until(store, "approved")
    assert recover(store, StateType.PAUSED) == []
    entry = close_after_failure(store, MODEL, RUN_R, "sign-off rejected")
    assert entry is not None and entry.kind == "failed"


def test_a_settled_rollback_is_left_alone_and_its_replaces_run_records_the_run_it_replaced() -> None:
    store = MemoryStore()
    live_history(store)
    # RUN_2's own closing entry is missing (its process died after the move); the rollback that replaced it says so
    ledger = read_ledger(store, MODEL)
    store.delete(keys.ledger_key(MODEL, ledger[-1].seq))
    append(store, "promoting", {"run": RUN_2, "version": "1.1.0", "production": production("1.1.0"),
                                "prefix": "production", "artifact_digest": "d1.1.0"})
    intent = rollback_until(store, "rolling-back")
    target = certified_targets(read_ledger(store, MODEL), "1.1.0")[0]
    move_back(store, "production", read_pointer(store, "production", MODEL), target, RUN_R, intent.seq, intent.hash)
    append(store, "rolled-back", {"run": RUN_R, "version": "1.0.0", "production": production("1.0.0"),
                                  "replaces_run": RUN_2})
    closed = recover(store)
    assert [(e.kind, e.payload["run"]) for e in closed] == [("promoted", RUN_2)]


def test_rolled_back_is_held_back_only_by_rolled_back() -> None:
    store = MemoryStore()
    live_history(store)
    intent = rollback_until(store, "rolling-back")
    append(store, "failed", {"run": RUN_R, "version": "1.0.0", "reason": "hook"})
    first = append_closing(store, MODEL, RUN_R, LedgerKind.ROLLED_BACK, {"run": RUN_R, "version": "1.0.0"},
                           after=intent.seq, signer=SIGNER, witnesses=[])
    assert first is not None
    assert append_closing(store, MODEL, RUN_R, LedgerKind.ROLLED_BACK, {"run": RUN_R}, after=intent.seq,
                          signer=SIGNER, witnesses=[]) is None

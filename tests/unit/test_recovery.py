"""Recovery decisions (tasks/recovery.py) and the not-live marker (tasks/promotion.py), on an in-memory store.

Each case builds the ledger and the pointer a real run leaves at the moment it stops, and checks what
recovery appends — and that it appends nothing the second time, nor when two recoverers race.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from prefect.client.schemas.objects import StateType

from clearance.config.schema import ArtifactRef, ModelVersion
from clearance.core import keys
from clearance.core.ledger_kinds import LedgerKind
from clearance.ledger import verify_chain
from gates.base import CheckResult, GateResult, Status
from tasks.bundle import audit_evidence
from tasks.ledger import append_entry, read_ledger
from tasks.promotion import (
    PointerMovedError,
    PointerState,
    ProductionPointer,
    PromotionOutcomeUnknown,
    move_pointer,
    not_live_runs,
    promote_to_production,
    read_pointer,
)
from tasks.recovery import GRACE, append_closing, close_after_failure, recover_model
from tasks.signing import FileSigner
from tasks.store import ObjectExists, ObjectStoreError, PreconditionFailed
from tests.fakes.memory_store import MemoryStore

MODEL = "churn"
SIGNER = FileSigner(ed25519.Ed25519PrivateKey.generate())
RUN_A = "11111111-1111-1111-1111-111111111111"
RUN_B = "22222222-2222-2222-2222-222222222222"
BODY = b"\x80\x05 model bytes"
DIGEST = hashlib.sha256(BODY).hexdigest()
CANDIDATE = keys.candidate_key(MODEL, "1.0.0", "model.joblib")
COPY = keys.production_key(MODEL, "1.0.0", CANDIDATE)
GATE = GateResult.from_checks("artifact_integrity", "1", [CheckResult(id="digest", status=Status.PASS, observed=1)])


def append(store: MemoryStore, kind: str, payload: dict):
    return append_entry(store, MODEL, LedgerKind(kind), payload, signer=SIGNER, witnesses=[])


def run_until(store: MemoryStore, run: str, last: str, version: str = "1.0.0", *, copied: bool = True,
              replaces: str | None = None) -> dict:
    """The ledger of ``run`` up to ``last`` (``approved`` or ``promoting``), its evidence and, when
    ``copied``, its production copy; returns the intent payload."""
    prefix = keys.run_prefix(MODEL, version, run)
    append(store, "started", {"run": run, "version": version, "initiator": "dana", "tier": "high"})
    store.put_if_absent(prefix + "gate-artifact_integrity.json", GATE.to_evidence_json())
    append(store, "approval-requested", {"run": run, "required": {"security": 1}})
    approved = append(store, "approved", {"run": run, "version": version, "artifact_digest": DIGEST,
                                          "decisions": []})
    production = {keys.production_key(MODEL, version, CANDIDATE): DIGEST}
    if copied:
        store.put_if_absent(keys.production_key(MODEL, version, CANDIDATE), BODY)
    intent = {"run": run, "version": version, "artifact_digest": DIGEST, "production": production,
              "prefix": "production", "pointer": keys.pointer_key(MODEL), "pointer_etag": None,
              "replaces_run": replaces, "approved_seq": approved.seq}
    if last == "promoting":
        append(store, "promoting", intent)
    return intent


def point_at(store: MemoryStore, run: str, version: str = "1.0.0", previous_run: str | None = None) -> None:
    seen = read_pointer(store, "production", MODEL)
    move_pointer(store, "production", seen, ProductionPointer(
        model=MODEL, version=version, artifact_digest=DIGEST, artifacts={keys.production_key(MODEL, version,
                                                                                             CANDIDATE): DIGEST},
        run_id=run, previous_run_id=previous_run, ledger_seq=1, ledger_hash="x"))


def recover(store: MemoryStore, states: dict[str, StateType | None] | None = None, **kwargs):
    states = states if states is not None else {}
    kwargs.setdefault("witnesses", [])
    return recover_model(store, MODEL, run_states=lambda run: states.get(run, StateType.FAILED), signer=SIGNER,
                         **kwargs)


def kinds(store: MemoryStore) -> list[str]:
    return [e.kind for e in read_ledger(store, MODEL)]


def chain_ok(store: MemoryStore) -> bool:
    documents = {key: store.get_bytes(key)[0] for key in store.list_keys(keys.ledger_prefix(MODEL))}
    return verify_chain(MODEL, documents, trusted_keys=[SIGNER.public_key]) == []


# --------------------------------------------------------------------------- the pointer ahead of the ledger


def test_a_live_version_without_its_entry_gets_one_promoted_entry_and_a_sealed_bundle() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    closed = recover(store)
    assert [e.kind for e in closed] == ["promoted"]
    entry = closed[0]
    assert entry.payload["recovered"] is True and entry.payload["run"] == RUN_A
    assert "production/churn/CURRENT.json names this run" in entry.payload["reason"]
    assert "FAILED" in entry.payload["reason"]
    assert entry.payload["production"] == {COPY: DIGEST} and entry.payload["artifact_digest"] == DIGEST
    prefix = keys.run_prefix(MODEL, "1.0.0", RUN_A)
    assert entry.payload["bundle"] == prefix + keys.BUNDLE
    assert "Recorded by recovery" in store.get_bytes(prefix + keys.REPORT_MD)[0].decode()
    assert store.head(prefix + keys.REPORT_HTML) is not None
    bundle = json.loads(store.get_bytes(prefix + keys.BUNDLE)[0])
    assert {"gate-artifact_integrity.json", "report.md", "report.html"} <= {f["name"] for f in bundle["files"]}
    assert audit_evidence(store, read_ledger(store, MODEL)) == (1, [])
    assert chain_ok(store)
    # idempotent: a second pass (and a third) appends nothing
    assert recover(store) == [] and recover(store) == []
    assert kinds(store).count("promoted") == 1


def test_a_bundle_the_run_sealed_before_it_failed_is_kept() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    prefix = keys.run_prefix(MODEL, "1.0.0", RUN_A)
    store.put_if_absent(prefix + keys.REPORT_MD, b"# the run's own report")
    store.put_if_absent(prefix + keys.BUNDLE, b'{"files": [], "ledger": [], "living": []}')
    entry = recover(store)[0]
    assert entry.payload["bundle_sha256"] == hashlib.sha256(store.get_bytes(prefix + keys.BUNDLE)[0]).hexdigest()
    assert store.get_bytes(prefix + keys.REPORT_MD)[0] == b"# the run's own report"


def test_a_run_from_before_intents_is_recovered_from_its_approved_entry() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "approved")
    point_at(store, RUN_A)
    assert [e.kind for e in recover(store)] == ["promoted"]
    assert kinds(store)[-2:] == ["approved", "promoted"]


def test_a_run_still_running_gets_a_grace_period_to_record_its_own_promotion() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    for state in (StateType.RUNNING, StateType.PENDING, StateType.PAUSED):
        assert recover(store, {RUN_A: state}) == []
    store.advance(GRACE + timedelta(seconds=5))  # by the store's clock: the run should have recorded it by now
    assert [e.kind for e in recover(store, {RUN_A: StateType.RUNNING})] == ["promoted"]


def test_when_prefect_cannot_tell_the_pointer_still_decides() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    assert [e.kind for e in recover(store, {RUN_A: None})] == ["promoted"]


def test_a_failure_entry_the_pointer_contradicts_is_followed_by_promoted() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    append(store, "failed", {"run": RUN_A, "version": "1.0.0", "reason": "store unavailable"})
    assert [e.kind for e in recover(store)] == ["promoted"]
    assert kinds(store)[-2:] == ["failed", "promoted"]
    assert recover(store) == []


def test_a_live_run_replaced_before_it_was_recorded_is_recorded_as_promoted() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    run_until(store, RUN_B, "promoting", "2.0.0", replaces=RUN_A)
    point_at(store, RUN_B, "2.0.0", previous_run=RUN_A)
    append(store, "promoted", {"run": RUN_B, "version": "2.0.0", "replaces_run": RUN_A})
    closed = recover(store)
    assert [(e.kind, e.payload["run"]) for e in closed] == [("promoted", RUN_A)]
    assert f"live until run {RUN_B}" in closed[0].payload["reason"]


# --------------------------------------------------------------------------- runs that ended silently


def test_an_ended_run_gets_failed_and_its_copy_is_marked_not_live() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")  # copied, then the process died before the move
    closed = recover(store, {RUN_A: StateType.CRASHED})
    assert [e.kind for e in closed] == ["failed"]
    payload = closed[0].payload
    assert payload["recovered"] is True and payload["prefect_state"] == "CRASHED" and payload["not_live"] is True
    assert "CRASHED" in payload["reason"]
    assert RUN_A in not_live_runs(store, "production", MODEL, "1.0.0")
    assert recover(store, {RUN_A: StateType.CRASHED}) == []


@pytest.mark.parametrize("state", [StateType.FAILED, StateType.CANCELLED])
def test_a_run_that_ended_before_its_intent_gets_failed_and_nothing_is_marked(state) -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "approved", copied=False)
    assert [e.kind for e in recover(store, {RUN_A: state})] == ["failed"]
    assert store.head(keys.not_live_key(MODEL, "1.0.0")) is None


@pytest.mark.parametrize("state", [StateType.RUNNING, StateType.PAUSED, StateType.PENDING, StateType.SCHEDULED,
                                   StateType.CANCELLING, None])
def test_a_run_not_ended_or_of_unknown_state_is_left_open(state) -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    assert recover(store, {RUN_A: state}) == []
    assert kinds(store)[-1] == "promoting"


def test_closed_runs_are_left_alone_and_prefect_is_not_asked_about_them() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    append(store, "promotion-failed", {"run": RUN_A, "version": "1.0.0", "reason": "pointer moved"})
    asked: list[str] = []
    assert recover_model(store, MODEL, run_states=lambda run: asked.append(run) or StateType.FAILED,
                         signer=SIGNER, witnesses=[]) == []
    assert asked == []


def test_the_failure_hook_records_failed_or_promoted_by_the_pointer() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    entry = close_after_failure(store, MODEL, RUN_A, "Flow run encountered an exception: boom")
    assert entry is not None and entry.kind == "failed" and entry.payload["reason"].endswith("boom")
    assert "recovered" not in entry.payload  # the run's own end, recorded by its hook
    assert close_after_failure(store, MODEL, RUN_A, "again") is None

    live = MemoryStore()
    run_until(live, RUN_B, "promoting")
    point_at(live, RUN_B)
    entry = close_after_failure(live, MODEL, RUN_B, "store unavailable")
    assert entry is not None and entry.kind == "promoted" and entry.payload["recovered"] is True


def test_a_run_that_never_wrote_to_the_ledger_is_not_closed() -> None:
    store = MemoryStore()
    assert close_after_failure(store, MODEL, RUN_A, "invalid config") is None
    assert kinds(store) == []


# --------------------------------------------------------------------------- a cut or rewritten ledger


class RememberingWitness:
    """A witness that kept every head published to it."""

    name = "memory-witness"

    def __init__(self) -> None:
        self.heads: list = []

    def publish(self, model, entry, ledger) -> None:
        from clearance.ledger import WitnessHead

        self.heads.append(WitnessHead.of(model, entry))

    def read(self, model):
        from clearance.ledger import WitnessReading

        return WitnessReading(witness=self.name, heads=[h for h in self.heads if h.model == model])


def test_a_tail_cut_after_the_intent_is_not_taken_for_a_run_that_could_not_close() -> None:
    from tasks.recovery import LedgerNotRecoverable

    store, witness = MemoryStore(), RememberingWitness()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    for entry in read_ledger(store, MODEL):
        witness.publish(MODEL, entry, store)
    promoted = append(store, "promoted", {"run": RUN_A, "version": "1.0.0"})
    witness.publish(MODEL, promoted, store)
    store.delete(keys.ledger_key(MODEL, promoted.seq))  # someone removes the promotion from the ledger
    with pytest.raises(LedgerNotRecoverable, match="lacks"):
        recover(store, witnesses=[witness])
    assert kinds(store)[-1] == "promoting"
    # without that witness, the same ledger is a run that could not close: it is recovered
    assert [e.kind for e in recover(store, witnesses=[])] == ["promoted"]


def test_a_ledger_that_does_not_verify_gets_nothing_written() -> None:
    from tasks.recovery import LedgerNotRecoverable

    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    key = keys.ledger_key(MODEL, 2)
    document = json.loads(store.objects[key])
    document["payload"]["required"] = {"security": 0}  # an edited entry
    store.objects[key] = json.dumps(document).encode()
    with pytest.raises(LedgerNotRecoverable, match="does not verify at entry 2"):
        recover(store)
    assert kinds(store)[-1] == "promoting"


# --------------------------------------------------------------------------- races


def test_two_recoverers_racing_append_one_entry() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    point_at(store, RUN_A)
    barrier = threading.Barrier(6)
    results: list = []

    def one() -> None:
        barrier.wait()
        results.append(recover(store))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(r) for r in results) == 1
    assert kinds(store).count("promoted") == 1 and chain_ok(store)


def test_a_closing_append_that_loses_its_seq_rechecks_and_stops() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    last = read_ledger(store, MODEL)[-1]
    original = store.put_if_absent
    raced = []

    def put_if_absent(key, body, content_type=""):
        if key.startswith(keys.ledger_prefix(MODEL)) and not raced:
            raced.append(key)  # another recoverer closes the run at this very seq first
            original(key, append_closing_body(store, last), content_type)
        return original(key, body, content_type)

    def append_closing_body(store, head):
        from clearance.ledger import LedgerEntry
        from tasks.ledger import sign_entry

        entry = sign_entry(MODEL, LedgerEntry.next_after(head, "failed", {"run": RUN_A, "reason": "other"}), SIGNER)
        return entry.model_dump_json().encode()

    store.put_if_absent = put_if_absent  # type: ignore[method-assign]
    assert append_closing(store, MODEL, RUN_A, LedgerKind.FAILED, {"run": RUN_A}, after=last.seq, signer=SIGNER,
                          witnesses=[]) is None
    assert kinds(store)[-1] == "failed" and kinds(store).count("failed") == 1 and raced


def test_promoted_is_held_back_only_by_a_promoted_entry() -> None:
    store = MemoryStore()
    run_until(store, RUN_A, "promoting")
    last = append(store, "failed", {"run": RUN_A, "version": "1.0.0", "reason": "wrong"})
    entry = append_closing(store, MODEL, RUN_A, LedgerKind.PROMOTED, {"run": RUN_A}, after=last.seq - 1,
                           signer=SIGNER, witnesses=[])
    assert entry is not None
    assert append_closing(store, MODEL, RUN_A, LedgerKind.PROMOTED, {"run": RUN_A}, after=last.seq - 1,
                          signer=SIGNER, witnesses=[]) is None


# --------------------------------------------------------------------------- the promote step and its copies


def candidate(store: MemoryStore, version: str = "1.0.0") -> ModelVersion:
    key = keys.candidate_key(MODEL, version, "model.joblib")
    if store.head(key) is None:
        store.put_if_absent(key, BODY)
    return ModelVersion(artifacts=[ArtifactRef(key=key, sha256=DIGEST, size=len(BODY))])


def promote(store: MemoryStore, version: str, run: str, seen: PointerState) -> dict[str, str]:
    from tasks.candidate import artifact_digest, observe_artifacts

    mv = candidate(store, version)
    digest = artifact_digest(observe_artifacts(store, mv))
    return promote_to_production(store, "production", MODEL, version, mv, digest, seen, run, 1, "h")


def test_a_losing_promotion_marks_its_copy_and_a_later_win_of_that_version_clears_it() -> None:
    store = MemoryStore()
    seen = read_pointer(store, "production", MODEL)
    promote(store, "1.0.0", RUN_A, seen)
    with pytest.raises(PointerMovedError):
        promote(store, "2.0.0", RUN_B, seen)  # read the pointer before A moved it
    assert read_pointer(store, "production", MODEL).pointer.run_id == RUN_A
    marker = json.loads(store.get_bytes(keys.not_live_key(MODEL, "2.0.0"))[0])
    assert marker["live"] is False and RUN_B in marker["runs"] and "moved" in marker["runs"][RUN_B]["reason"]
    assert store.head(keys.not_live_key(MODEL, "1.0.0")) is None  # the live version is never marked
    # 2.0.0 promoted again, this time winning: its copy is reused and the marker goes
    promote(store, "2.0.0", "33333333-3333-3333-3333-333333333333", read_pointer(store, "production", MODEL))
    assert read_pointer(store, "production", MODEL).pointer.version == "2.0.0"
    assert store.head(keys.not_live_key(MODEL, "2.0.0")) is None


def test_the_pointer_moves_only_after_every_artifact_is_copied_and_verified() -> None:
    store = MemoryStore()
    mv = candidate(store)
    extra_body = b"\x80\x05 tokenizer"
    extra = ArtifactRef(key=keys.candidate_key(MODEL, "1.0.0", "tok.bin"), sha256=hashlib.sha256(extra_body)
                        .hexdigest())
    store.put_if_absent(extra.key, extra_body)
    # someone left other bytes where the second copy must go: production is never overwritten
    store.put_if_absent(keys.production_key(MODEL, "1.0.0", extra.key), b"something else")
    mv = ModelVersion(artifacts=[*mv.artifacts, extra])
    from tasks.candidate import artifact_digest, observe_artifacts

    digest = artifact_digest(observe_artifacts(store, mv))
    with pytest.raises(ObjectExists):
        promote_to_production(store, "production", MODEL, "1.0.0", mv, digest,
                              read_pointer(store, "production", MODEL), RUN_A, 1, "h")
    assert read_pointer(store, "production", MODEL).pointer is None
    assert RUN_A in not_live_runs(store, "production", MODEL, "1.0.0")
    # a complete, verified copy: the pointer names exactly the copies and their digests
    clean = MemoryStore()
    copied = promote(clean, "1.0.0", RUN_A, read_pointer(clean, "production", MODEL))
    pointer = read_pointer(clean, "production", MODEL).pointer
    assert pointer.artifacts == copied == {COPY: DIGEST}
    assert all(clean.sha256_of(key)[0] == sha for key, sha in pointer.artifacts.items())


def test_a_move_whose_answer_was_lost_is_recognised_as_this_runs() -> None:
    store = MemoryStore()
    original = store.put_if_match

    def lost_answer(key, body, expected_etag, content_type=""):
        original(key, body, expected_etag, content_type)  # the write lands …
        raise PreconditionFailed("retry found the pointer changed", key=key, status=412)  # … the retry sees it

    store.put_if_match = lost_answer  # type: ignore[method-assign]
    promote(store, "1.0.0", RUN_A, read_pointer(store, "production", MODEL))
    assert read_pointer(store, "production", MODEL).pointer.run_id == RUN_A


def test_a_move_the_store_cannot_confirm_is_unknown_not_failed() -> None:
    store = MemoryStore()
    candidate(store)
    seen = read_pointer(store, "production", MODEL)

    head = store.head

    def down(key, *args, **kwargs):
        if key == keys.pointer_key(MODEL):  # the store stops answering right at the move, and stays down
            raise ObjectStoreError("503 ServiceUnavailable")
        return head(key)

    store.put_if_match = down  # type: ignore[method-assign]
    store.head = down  # type: ignore[method-assign]
    with pytest.raises(PromotionOutcomeUnknown, match="whether churn 1.0.0 is live is unknown"):
        promote(store, "1.0.0", RUN_A, seen)
    assert keys.not_live_key(MODEL, "1.0.0") not in store.objects  # unknown is not "not live": nothing marked


def test_the_not_live_key_has_its_documented_shape() -> None:
    assert keys.not_live_key("churn", "1.2.0") == "production/churn/1.2.0/NOT-LIVE.json"
    assert keys.not_live_key("churn", "1.2.0", "prod-eu") == "prod-eu/churn/1.2.0/NOT-LIVE.json"
    assert LedgerKind.PROMOTING.value == "promoting" and not LedgerKind.PROMOTING.terminal

"""The ledger's hash chain and signatures: intact signed chains verify, every kind of tampering is named,
and witnessed heads show what a chain alone cannot (a cut tail, a consistent rewrite)."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from clearance.core.keys import ledger_key
from clearance.identity import sshsig
from clearance.identity.statements import PERSON_NAMESPACE, SERVICE_NAMESPACE
from clearance.ledger import GENESIS_HASH, LedgerEntry, WitnessHead, WitnessReading, check_heads, verify_chain
from tasks.ledger import sign_entry
from tasks.signing import FileSigner

MODEL = "churn"
SERVICE = FileSigner(ed25519.Ed25519PrivateKey.generate())
INTRUDER = FileSigner(ed25519.Ed25519PrivateKey.generate())
TRUSTED = [SERVICE.public_key]


def build(n: int, signer: FileSigner | None = SERVICE, model: str = MODEL) -> dict[str, bytes]:
    docs, previous = {}, None
    for i in range(n):
        entry = LedgerEntry.next_after(previous, "event", {"i": i})
        if signer is not None:
            entry = sign_entry(model, entry, signer)
        docs[ledger_key(model, entry.seq)] = entry.model_dump_json().encode()
        previous = entry
    return docs


def entry_of(docs: dict[str, bytes], seq: int) -> LedgerEntry:
    return LedgerEntry.model_validate_json(docs[ledger_key(MODEL, seq)])


def verify(docs: dict[str, bytes], **kwargs):
    return verify_chain(MODEL, docs, trusted_keys=TRUSTED, **kwargs)


def rewrite_from(docs: dict[str, bytes], seq: int, signer: FileSigner | None) -> dict[str, bytes]:
    """Someone re-writes entry ``seq`` and re-hashes (and re-signs, if they have a key) every later one."""
    forged, previous = dict(docs), entry_of(docs, seq - 1) if seq > 1 else None
    for n in range(seq, len(docs) + 1):
        old = entry_of(docs, n)
        entry = LedgerEntry.next_after(previous, old.kind, old.payload | ({"i": 99} if n == seq else {}), at=old.at)
        if signer is not None:
            entry = sign_entry(MODEL, entry, signer)
        forged[ledger_key(MODEL, n)] = entry.model_dump_json().encode()
        previous = entry
    return forged


def test_intact_signed_chain_has_no_problems():
    docs = build(5)
    assert verify(docs) == []
    first = entry_of(docs, 1)
    assert first.prev_hash == GENESIS_HASH and first.hash == first.computed_hash()
    # the signature is an ordinary SSHSIG over the entry's message, in the service namespace
    assert sshsig.verify(first.signature, first.message(MODEL), SERVICE_NAMESPACE, TRUSTED) == SERVICE.public_key


def test_the_signature_is_not_part_of_the_hash():
    """Entries written before signatures existed keep their hash; signing changes no hash."""
    unsigned = LedgerEntry.next_after(None, "event", {"i": 0})
    signed = sign_entry(MODEL, unsigned, SERVICE)
    assert signed.hash == unsigned.hash == signed.computed_hash() and signed.signature


def test_altered_payload_is_named():
    docs = build(4)
    key = ledger_key(MODEL, 2)
    raw = json.loads(docs[key])
    raw["payload"]["i"] = 99
    docs[key] = json.dumps(raw).encode()
    problems = verify(docs)
    assert [p.seq for p in problems] == [2]
    assert "altered" in problems[0].problem


def test_altered_and_rehashed_entry_breaks_the_next_link_and_its_signature():
    docs = build(4)
    key = ledger_key(MODEL, 2)
    entry = LedgerEntry.model_validate_json(docs[key])
    forged = entry.model_copy(update={"payload": {"i": 42}})
    forged = forged.model_copy(update={"hash": forged.computed_hash()})
    docs[key] = forged.model_dump_json().encode()
    problems = [str(p) for p in verify(docs)]
    assert any("entry 3 does not follow entry 2" in p for p in problems)
    assert any(p.startswith(f"{key}: entry 2 has a signature that does not match it") for p in problems), problems


def test_removed_entry_is_named():
    docs = build(5)
    del docs[ledger_key(MODEL, 3)]
    problems = verify(docs)
    assert any("entry 3 removed" in p.problem for p in problems)


def test_inserted_entry_is_named():
    docs = build(3)
    previous = entry_of(docs, 1)
    intruder = sign_entry(MODEL, LedgerEntry.next_after(previous, "approved", {"by": "mallory"}), SERVICE)
    docs[ledger_key(MODEL, 1) + ".x"] = intruder.model_dump_json().encode()
    problems = verify(docs)
    assert any("wrong key" in p.problem for p in problems)
    assert any("appears twice" in p.problem for p in problems)


def test_unreadable_entry_is_named():
    docs = build(2)
    docs[ledger_key(MODEL, 2)] = b"{not json"
    problems = verify(docs)
    assert problems[0].key == ledger_key(MODEL, 2) and "unreadable" in problems[0].problem


def test_truncated_tail_caught_by_the_anchor():
    docs = build(4)
    head = entry_of(docs, 4)
    del docs[ledger_key(MODEL, 4)]
    assert verify(docs) == []  # a chain alone cannot see a cut tail
    problems = verify(docs, expected_head=(4, head.hash))
    assert problems and "missing" in problems[0].problem


# --------------------------------------------------------------------------- signatures


def test_unsigned_entries_are_named_each():
    docs = build(3, signer=None)
    problems = [str(p) for p in verify(docs)]
    assert problems == [f"{ledger_key(MODEL, n)}: entry {n} is not signed by the clearance service" for n in (1, 2, 3)]
    assert verify_chain(MODEL, docs, trusted_keys=None) == []  # hash chain only, when asked for explicitly


def test_a_rehashed_chain_signed_by_another_key_is_named_from_the_rewrite_on():
    docs = rewrite_from(build(5), 3, INTRUDER)
    problems = verify(docs)
    assert [p.seq for p in problems] == [3, 4, 5]
    assert all(f"signed by {INTRUDER.public_key.fingerprint}, which is not a trusted service key" in p.problem
               for p in problems)


def test_a_rehashed_unsigned_chain_is_named():
    docs = rewrite_from(build(4), 2, None)
    assert {p.seq: p.problem for p in verify(docs)} == {
        2: "entry 2 is not signed by the clearance service", 3: "entry 3 is not signed by the clearance service",
        4: "entry 4 is not signed by the clearance service"}


def test_a_signature_moved_to_another_entry_or_ledger_does_not_verify():
    docs = build(3)
    one, two = entry_of(docs, 1), entry_of(docs, 2)
    docs[ledger_key(MODEL, 2)] = two.model_copy(update={"signature": one.signature}).model_dump_json().encode()
    assert [(p.seq, "does not match" in p.problem) for p in verify(docs)] == [(2, True)]
    other = build(2, model="fraud")  # a genuine entry of another model's ledger, copied here
    copied = {ledger_key(MODEL, k): v for k, v in zip((1, 2), other.values(), strict=True)}
    assert all("does not match" in p.problem for p in verify_chain(MODEL, copied, trusted_keys=TRUSTED))


def test_a_signature_in_another_namespace_does_not_count():
    docs = build(1)
    entry = entry_of(docs, 1)
    person = entry.model_copy(update={"signature": SERVICE.sign(entry.message(MODEL), PERSON_NAMESPACE)})
    docs[ledger_key(MODEL, 1)] = person.model_dump_json().encode()
    (problem,) = verify(docs)
    assert "namespace 'clearance'" in problem.problem


def test_garbage_signature_is_named_not_raised():
    docs = build(1)
    docs[ledger_key(MODEL, 1)] = entry_of(docs, 1).model_copy(update={"signature": "x" * 50}).model_dump_json().encode()
    (problem,) = verify(docs)
    assert "unreadable signature" in problem.problem


def test_an_ecdsa_service_key_verifies_like_ed25519():
    """The KMS key is ecdsa-sha2-nistp256: the chain verifier takes it like any service key."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = sshsig.public_key_of(private)

    class EcdsaSigner:
        public_key = public

        def sign(self, message: bytes, namespace: str = SERVICE_NAMESPACE) -> str:
            from cryptography.hazmat.primitives import hashes

            der = private.sign(sshsig.signed_data(message, namespace), ec.ECDSA(hashes.SHA256()))
            return sshsig.armor(public, namespace, sshsig.ecdsa_signature_blob(der))

    entry = sign_entry(MODEL, LedgerEntry.next_after(None, "event", {}), EcdsaSigner())
    docs = {ledger_key(MODEL, 1): entry.model_dump_json().encode()}
    assert verify_chain(MODEL, docs, trusted_keys=[public]) == []
    assert verify(docs)[0].problem.startswith("entry 1 is signed by SHA256:")


# --------------------------------------------------------------------------- witnessed heads


def heads_of(docs: dict[str, bytes], *seqs: int) -> WitnessReading:
    return WitnessReading(witness="w", heads=[WitnessHead.of(MODEL, entry_of(docs, s)) for s in seqs])


def stored(docs: dict[str, bytes]) -> list[LedgerEntry]:
    return [LedgerEntry.model_validate_json(v) for _, v in sorted(docs.items())]


def test_heads_that_agree_have_no_problems():
    docs = build(5)
    assert check_heads(MODEL, stored(docs), [heads_of(docs, 1, 2, 3, 4, 5)], TRUSTED) == []
    assert check_heads(MODEL, stored(docs), [heads_of(docs, 3)], TRUSTED) == []  # a lagging witness is no break


def test_a_cut_tail_is_named_by_the_witness():
    docs = build(5)
    reading = heads_of(docs, 4, 5)
    for seq in (4, 5):
        del docs[ledger_key(MODEL, seq)]
    (problem,) = check_heads(MODEL, stored(docs), [reading], TRUSTED)
    assert str(problem) == (f"{ledger_key(MODEL, 5)}: entries 4–5 removed from the end of the ledger: witness w saw "
                            "entry 5, the stored ledger ends at entry 3")


def test_a_ledger_deleted_whole_is_named():
    docs = build(2)
    (problem,) = check_heads(MODEL, [], [heads_of(docs, 1, 2)], TRUSTED)
    assert "entries 1–2 removed from the end of the ledger" in problem.problem and "ends at nothing" in problem.problem


@pytest.mark.parametrize("signer", [SERVICE, INTRUDER, None], ids=["insider-re-signed", "other-key", "unsigned"])
def test_a_consistent_rewrite_is_named_from_where_it_starts(signer):
    """Even a rewrite re-signed with the real service key (an insider) differs from the witnessed heads."""
    docs = build(6)
    reading = heads_of(docs, 1, 2, 3, 4, 5, 6)
    forged = rewrite_from(docs, 4, signer)
    (problem,) = check_heads(MODEL, stored(forged), [reading], TRUSTED)
    assert problem.seq == 4 and problem.problem == (
        "entry 4 differs from the one witness w saw: the ledger was rewritten from entry 4 on (3 witnessed entries "
        "differ)")
    if signer is SERVICE:
        assert verify(forged) == []  # only the witness sees this one


def test_a_rewrite_between_witnessed_heads_is_bounded():
    docs = build(6)
    forged = rewrite_from(docs, 3, SERVICE)
    (problem,) = check_heads(MODEL, stored(forged), [heads_of(docs, 1, 5)], TRUSTED)
    assert "entry 5 differs" in problem.problem and "rewritten from an entry in 2–5 on" in problem.problem


def test_a_head_nobody_trusted_signed_is_named_and_not_counted():
    docs = build(3)
    fake = WitnessHead(model=MODEL, seq=9, hash="f" * 64, signature=INTRUDER.sign(b"x", SERVICE_NAMESPACE))
    reading = WitnessReading(witness="w", heads=[*heads_of(docs, 3).heads, fake])
    (problem,) = check_heads(MODEL, stored(docs), [reading], TRUSTED)
    assert problem.key == "witness w" and "head for entry 9 is signed by" in problem.problem
    assert "not counted" in problem.problem


def test_heads_of_another_model_are_ignored():
    docs = build(2)
    other = build(4, model="fraud")
    reading = WitnessReading(witness="w", heads=[WitnessHead.of("fraud", LedgerEntry.model_validate_json(v))
                                                 for v in other.values()])
    assert check_heads(MODEL, stored(docs), [reading], TRUSTED) == []


# --------------------------------------------------------------------------- appending: signed, then witnessed


def test_appending_needs_the_service_key(monkeypatch):
    from clearance.settings import get_settings
    from tasks.ledger import append_entry
    from tasks.signing import ServiceKeyError
    from tests.fakes.memory_store import MemoryStore

    monkeypatch.delenv("CLEARANCE_SERVICE_KEY_FILE", raising=False)
    monkeypatch.delenv("CLEARANCE_SERVICE_KMS_KEY_ID", raising=False)
    get_settings.cache_clear()
    store = MemoryStore()
    try:
        with pytest.raises(ServiceKeyError, match="CLEARANCE_SERVICE_KEY_FILE"):
            append_entry(store, MODEL, "started", {"run": "r"}, witnesses=[])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert store.objects == {}  # nothing unsigned was written


def test_appends_are_signed_with_the_configured_key(service_key):
    from clearance.identity.sshsig import PublicKey
    from tasks.ledger import append_entry
    from tests.fakes.memory_store import MemoryStore

    store = MemoryStore()
    for kind in ("started", "gate"):
        append_entry(store, MODEL, kind, {"run": "r"}, witnesses=[])
    session_key = PublicKey.parse(service_key.with_name(service_key.name + ".pub").read_text())
    assert verify_chain(MODEL, store.objects, trusted_keys=[session_key]) == []
    assert [p.seq for p in verify(store.objects)] == [1, 2]  # another key is not trusted


class FlakyWitness:
    """A witness that is down for the first ``down`` publishes."""

    name = "flaky"

    def __init__(self, down: int) -> None:
        self.down = down

    def publish(self, model, entry, ledger):
        if self.down:
            self.down -= 1
            raise ConnectionError("witness unreachable")

    def read(self, model):
        return WitnessReading(witness=self.name)


def test_a_witness_outage_never_breaks_the_append_and_the_next_append_catches_up(caplog):
    from tasks.ledger import append_entry, read_ledger
    from tasks.witness import BucketWitness
    from tests.fakes.memory_store import MemoryStore

    ledger, witness_bucket = MemoryStore(), MemoryStore()
    bucket = BucketWitness(witness_bucket, name="witness-bucket")
    broken = BucketWitness(witness_bucket, name="witness-bucket")
    broken.store = None  # type: ignore[assignment]  # any call fails, like a refused connection
    with caplog.at_level("WARNING"):
        append_entry(ledger, MODEL, "started", {"run": "r"}, witnesses=[broken, FlakyWitness(1)])
        append_entry(ledger, MODEL, "gate", {"run": "r"}, witnesses=[broken])
    assert [e.seq for e in read_ledger(ledger, MODEL)] == [1, 2]  # the ledger is the truth
    assert "witness witness-bucket did not record entry 1" in caplog.text and "the next append retries" in caplog.text
    assert witness_bucket.objects == {}
    append_entry(ledger, MODEL, "gate", {"run": "r"}, witnesses=[bucket])
    reading = bucket.read(MODEL)
    assert [h.seq for h in reading.heads] == [1, 2, 3] and reading.highest == 3  # caught up on what it missed
    assert check_heads(MODEL, read_ledger(ledger, MODEL), [reading], _session_keys()) == []


def test_a_witness_never_overwrites_a_head_it_holds():
    from tasks.ledger import append_entry
    from tasks.witness import BucketWitness, WitnessConflict
    from tests.fakes.memory_store import MemoryStore

    ledger, witness_bucket = MemoryStore(), MemoryStore()
    bucket = BucketWitness(witness_bucket)
    entry = append_entry(ledger, MODEL, "started", {"run": "r"}, witnesses=[bucket])
    bucket.publish(MODEL, entry, ledger)  # the same head again (a retry) is fine
    other = sign_entry(MODEL, LedgerEntry.next_after(None, "started", {"run": "forged"}), SERVICE)
    with pytest.raises(WitnessConflict, match="already holds another head for entry 1"):
        bucket.publish(MODEL, other, ledger)
    assert [h.hash for h in bucket.read(MODEL).heads] == [entry.hash]


def _session_keys():
    from tasks.signing import own_public_keys

    return own_public_keys()

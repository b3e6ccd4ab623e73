"""The ledger's hash chain: intact chains verify, every kind of tampering is named."""

import json

from clearance.core.keys import ledger_key
from clearance.ledger import GENESIS_HASH, LedgerEntry, verify_chain

MODEL = "churn"


def build(n: int) -> dict[str, bytes]:
    docs, previous = {}, None
    for i in range(n):
        entry = LedgerEntry.next_after(previous, "event", {"i": i})
        docs[ledger_key(MODEL, entry.seq)] = entry.model_dump_json().encode()
        previous = entry
    return docs


def test_intact_chain_has_no_problems():
    docs = build(5)
    assert verify_chain(MODEL, docs) == []
    first = LedgerEntry.model_validate_json(docs[ledger_key(MODEL, 1)])
    assert first.prev_hash == GENESIS_HASH and first.hash == first.computed_hash()


def test_altered_payload_is_named():
    docs = build(4)
    key = ledger_key(MODEL, 2)
    raw = json.loads(docs[key])
    raw["payload"]["i"] = 99
    docs[key] = json.dumps(raw).encode()
    problems = verify_chain(MODEL, docs)
    assert [p.seq for p in problems] == [2]
    assert "altered" in problems[0].problem


def test_altered_and_rehashed_entry_breaks_the_next_link():
    docs = build(4)
    key = ledger_key(MODEL, 2)
    entry = LedgerEntry.model_validate_json(docs[key])
    forged = entry.model_copy(update={"payload": {"i": 42}})
    forged = forged.model_copy(update={"hash": forged.computed_hash()})
    docs[key] = forged.model_dump_json().encode()
    problems = verify_chain(MODEL, docs)
    assert any(p.seq == 3 and "does not follow entry 2" in p.problem for p in problems)


def test_removed_entry_is_named():
    docs = build(5)
    del docs[ledger_key(MODEL, 3)]
    problems = verify_chain(MODEL, docs)
    assert any("entry 3 removed" in p.problem for p in problems)


def test_inserted_entry_is_named():
    docs = build(3)
    previous = LedgerEntry.model_validate_json(docs[ledger_key(MODEL, 1)])
    intruder = LedgerEntry.next_after(previous, "approved", {"by": "mallory"})
    docs[ledger_key(MODEL, 1) + ".x"] = intruder.model_dump_json().encode()
    problems = verify_chain(MODEL, docs)
    assert any("wrong key" in p.problem for p in problems)
    assert any("appears twice" in p.problem for p in problems)


def test_unreadable_entry_is_named():
    docs = build(2)
    docs[ledger_key(MODEL, 2)] = b"{not json"
    problems = verify_chain(MODEL, docs)
    assert problems[0].key == ledger_key(MODEL, 2) and "unreadable" in problems[0].problem


def test_truncated_tail_caught_by_the_anchor():
    docs = build(4)
    head = LedgerEntry.model_validate_json(docs[ledger_key(MODEL, 4)])
    del docs[ledger_key(MODEL, 4)]
    assert verify_chain(MODEL, docs) == []  # a chain alone cannot see a cut tail
    problems = verify_chain(MODEL, docs, expected_head=(4, head.hash))
    assert problems and "missing" in problems[0].problem

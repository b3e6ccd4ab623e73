"""Appending to and reading the evidence ledger in the object store.

One object per entry, written with ``IfNoneMatch='*'``: two writers racing for the
same sequence number cannot both succeed, so the loser re-reads and retries.
"""

from __future__ import annotations

from typing import Any

from clearance.core.keys import ledger_key, ledger_prefix
from clearance.core.ledger_kinds import LedgerKind
from clearance.ledger import ChainProblem, LedgerEntry, verify_chain
from tasks.store import ObjectExists, Store

_MAX_APPEND_ATTEMPTS = 20


def read_ledger(store: Store, model: str) -> list[LedgerEntry]:
    """Every entry of a model's ledger, in sequence order (unverified: see :func:`verify_ledger`)."""
    entries = [LedgerEntry.model_validate(store.get_json(key)) for key in store.list_keys(ledger_prefix(model))]
    return sorted(entries, key=lambda e: e.seq)


def last_entry(store: Store, model: str) -> LedgerEntry | None:
    """The newest entry, or ``None`` for an empty ledger."""
    keys = store.list_keys(ledger_prefix(model))
    return LedgerEntry.model_validate(store.get_json(max(keys))) if keys else None


def append_entry(store: Store, model: str, kind: LedgerKind, payload: dict[str, Any]) -> LedgerEntry:
    """Append one entry after the current head; retries when another writer got there first."""
    for _ in range(_MAX_APPEND_ATTEMPTS):
        entry = LedgerEntry.next_after(last_entry(store, model), LedgerKind(kind).value, payload)
        try:
            store.put_if_absent(ledger_key(model, entry.seq), entry.model_dump_json().encode(),
                                content_type="application/json")
            return entry
        except ObjectExists:
            continue
    raise RuntimeError(f"could not append to the ledger of {model}: {_MAX_APPEND_ATTEMPTS} writers raced ahead")


def verify_ledger(store: Store, model: str, expected_head: tuple[int, str] | None = None
                  ) -> tuple[int, list[ChainProblem]]:
    """Number of entries read and the problems found (empty when the chain is intact)."""
    keys = store.list_keys(ledger_prefix(model))
    documents = {key: store.get_bytes(key)[0] for key in keys}
    return len(documents), verify_chain(model, documents, expected_head=expected_head)

"""Appending to, reading and auditing the evidence ledger in the object store.

One object per entry, written with ``IfNoneMatch='*'``: two writers racing for the same sequence
number cannot both succeed, so the loser re-reads and retries. Every entry is signed by the
clearance service key before it is written (no key, no append), and after it is written its head
goes to the witnesses outside the bucket (``tasks/witness.py``); a witness failure is logged, never
fatal: the ledger is the truth.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clearance.core.keys import LEDGER_KEY_WIDTH, ledger_key, ledger_prefix
from clearance.core.ledger_kinds import LedgerKind
from clearance.identity.sshsig import PublicKey
from clearance.identity.statements import SERVICE_NAMESPACE
from clearance.ledger import (
    ChainProblem,
    LedgerEntry,
    WitnessReading,
    check_heads,
    parse_entries,
    verify_chain,
)
from tasks.signing import ServiceSigner, require_signer
from tasks.store import ObjectExists, Store
from tasks.store_probe import require_conditional_writes
from tasks.witness import Witness, configured_witnesses, publish_head

_MAX_APPEND_ATTEMPTS = 20


def lost_race_pause(attempt: int) -> None:
    """After losing a sequence number to another writer: a short random pause, growing with each loss, so
    writers that keep colliding spread out instead of losing to each other in lock step (under load, one thread
    could otherwise lose every one of its attempts)."""
    time.sleep(random.uniform(0, min(0.005 * 2 ** attempt, 0.5)))  # noqa: S311 — jitter, not a secret


def seq_of(key: str) -> int | None:
    """The sequence number of a ledger entry's object key (``None``: not an entry's key)."""
    name = key.rsplit("/", 1)[-1].removesuffix(".json")
    return int(name) if len(name) == LEDGER_KEY_WIDTH and name.isdigit() else None


def append_unless(store: Store, model: str, kind: str, payload: dict[str, Any], *, after: int,
                  settled: Callable[[LedgerEntry], bool], signer: ServiceSigner,
                  witnesses: Sequence[Witness] | None = None) -> LedgerEntry | None:
    """Append ``kind`` after the ledger head unless an entry after seq ``after`` (the head as the caller read it)
    already ``settled`` what the caller wanted; then nothing (``None``).

    Create-only at the next sequence number: a writer that loses the number reads the entries it lost to and
    asks again, so two writers never both append what only one may (the closing entry of a run, one lapse).
    """
    floor = max(after, 1)
    tail: dict[int, LedgerEntry] = {}
    for attempt in range(_MAX_APPEND_ATTEMPTS):
        for key in store.list_keys(ledger_prefix(model)):
            seq = seq_of(key)
            if seq is not None and seq >= floor and seq not in tail:
                tail[seq] = LedgerEntry.model_validate(store.get_json(key))
        if any(e.seq > after and settled(e) for e in tail.values()):
            return None
        head = tail[max(tail)] if tail else None
        entry = put_next(store, model, head, kind, payload, signer=signer, witnesses=witnesses)
        if entry is not None:
            return entry
        lost_race_pause(attempt)  # another writer took this seq: read what it wrote, check again
    raise RuntimeError(f"could not append to the ledger of {model}: {_MAX_APPEND_ATTEMPTS} writers raced ahead")


def read_ledger(store: Store, model: str) -> list[LedgerEntry]:
    """Every entry of a model's ledger, in sequence order (unverified: see :func:`audit_ledger`)."""
    entries = [LedgerEntry.model_validate(store.get_json(key)) for key in store.list_keys(ledger_prefix(model))]
    return sorted(entries, key=lambda e: e.seq)


def last_entry(store: Store, model: str) -> LedgerEntry | None:
    """The newest entry, or ``None`` for an empty ledger."""
    keys = store.list_keys(ledger_prefix(model))
    return LedgerEntry.model_validate(store.get_json(max(keys))) if keys else None


def sign_entry(model: str, entry: LedgerEntry, signer: ServiceSigner) -> LedgerEntry:
    """``entry`` with the service's signature over :func:`clearance.ledger.entry_message`."""
    return entry.model_copy(update={"signature": signer.sign(entry.message(model), SERVICE_NAMESPACE)})


def put_next(store: Store, model: str, head: LedgerEntry | None, kind: str, payload: dict[str, Any], *,
             signer: ServiceSigner, witnesses: Sequence[Witness] | None = None) -> LedgerEntry | None:
    """Sign the entry after ``head``, write it create-only and publish it to the witnesses.

    ``None`` when another writer took that sequence number first (the caller reads again and decides).
    """
    entry = sign_entry(model, LedgerEntry.next_after(head, kind, payload), signer)
    try:
        store.put_if_absent(ledger_key(model, entry.seq), entry.model_dump_json().encode(),
                            content_type="application/json")
    except ObjectExists:
        return None
    publish_head(store, model, entry, configured_witnesses() if witnesses is None else witnesses)
    return entry


def append_entry(store: Store, model: str, kind: LedgerKind, payload: dict[str, Any], *,
                 signer: ServiceSigner | None = None, witnesses: Sequence[Witness] | None = None) -> LedgerEntry:
    """Append one signed entry after the current head, then publish the head to the witnesses.

    Retries when another writer got there first. Raises :class:`tasks.signing.ServiceKeyError`
    (naming ``CLEARANCE_SERVICE_KEY_FILE``) when no service key is configured, and
    :class:`tasks.store.ConditionalWritesIgnored` when the store does not enforce create-only writes
    (``tasks/store_probe.py``: the append would be a silent overwrite): nothing is written.
    ``signer`` and ``witnesses`` default to those of the settings.
    """
    kind_value = LedgerKind(kind).value
    signer = signer or require_signer(purpose="sign the ledger entry")
    require_conditional_writes(store)
    for attempt in range(_MAX_APPEND_ATTEMPTS):
        entry = put_next(store, model, last_entry(store, model), kind_value, payload, signer=signer,
                         witnesses=witnesses)
        if entry is not None:
            return entry
        lost_race_pause(attempt)
    raise RuntimeError(f"could not append to the ledger of {model}: {_MAX_APPEND_ATTEMPTS} writers raced ahead")


def verify_ledger(store: Store, model: str, expected_head: tuple[int, str] | None = None, *,
                  trusted_keys: Sequence[PublicKey] | None) -> tuple[int, list[ChainProblem]]:
    """Number of entries read and the chain's problems (empty when intact); see :func:`verify_chain`."""
    documents = {key: store.get_bytes(key)[0] for key in store.list_keys(ledger_prefix(model))}
    return len(documents), verify_chain(model, documents, trusted_keys=trusted_keys, expected_head=expected_head)


@dataclass
class LedgerAudit:
    """What :func:`audit_ledger` found: the readable entries, and every problem of the chain and its heads."""

    count: int
    entries: list[LedgerEntry]
    problems: list[ChainProblem] = field(default_factory=list)
    #: The highest head any witness holds (0: none), to say how much of the tail is witnessed.
    witnessed: int = 0


def audit_ledger(store: Store, model: str, *, trusted_keys: Sequence[PublicKey],
                 readings: Sequence[WitnessReading], expected_head: tuple[int, str] | None = None) -> LedgerAudit:
    """The chain (hashes, order, every entry's service signature), the production pointer's anchor and
    the witnesses' heads, checked against the stored ledger; a witness that could not be read is a
    problem too (the tail would go unchecked)."""
    documents = {key: store.get_bytes(key)[0] for key in store.list_keys(ledger_prefix(model))}
    problems = verify_chain(model, documents, trusted_keys=trusted_keys, expected_head=expected_head)
    entries = sorted((entry for _, entry in parse_entries(documents)[0]), key=lambda e: e.seq)
    for reading in readings:
        if reading.error:
            problems.append(ChainProblem(key=f"witness {reading.witness}", seq=None,
                                         problem=f"could not be read ({reading.error}): the tail is unchecked"))
    problems += check_heads(model, entries, readings, trusted_keys)
    return LedgerAudit(count=len(documents), entries=entries, problems=problems,
                       witnessed=max((r.highest for r in readings), default=0))

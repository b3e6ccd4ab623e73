"""The evidence ledger's hash chain: building entries and proving nothing was changed.

Each entry holds the hash of the one before it, so altering, removing or inserting an entry breaks
the chain at a point :func:`verify_chain` names. Each entry is also signed by the clearance service
key (SSHSIG, namespace ``clearance-service``) over :func:`entry_message` — the ledger's model, the
entry's sequence number and its hash — so whoever can write the bucket but does not hold the
service key cannot re-hash a consistent forged chain: its entries are named as unsigned or signed
by a key that is not trusted. What a chain alone cannot show (a cut tail) is for the witnesses
(:mod:`clearance.ledger.heads`). Storage lives in ``tasks/ledger.py``; this module is pure so
auditors can verify offline copies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clearance.core.clock import utcnow
from clearance.core.digests import canonical_json, sha256_json
from clearance.core.keys import ledger_key
from clearance.identity import sshsig
from clearance.identity.sshsig import PublicKey, SignatureError
from clearance.identity.statements import SERVICE_NAMESPACE

GENESIS_HASH = "0" * 64
#: What a ledger signature says it is for (a signature over a decision cannot pass for one).
ENTRY_PURPOSE = "ledger-entry"


def entry_message(model: str, seq: int, entry_hash: str) -> bytes:
    """The bytes the service key signs for entry ``seq`` of ``model``'s ledger (canonical JSON)."""
    return canonical_json({"purpose": ENTRY_PURPOSE, "ledger": model, "seq": seq, "hash": entry_hash})


class LedgerEntry(BaseModel):
    """One immutable ledger record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=1)
    prev_hash: str
    kind: str = Field(description="started, gate, approval, promoted, rejected, failed, …")
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)
    hash: str = ""
    signature: str = Field("", max_length=sshsig.MAX_ARMORED,
                           description="The service key's armored SSHSIG over entry_message(model, seq, hash).")

    def computed_hash(self) -> str:
        """SHA-256 over the canonical JSON of every field but ``hash`` and ``signature``."""
        return sha256_json(self.model_dump(mode="json", exclude={"hash", "signature"}))

    def message(self, model: str) -> bytes:
        """What the service key signs for this entry of ``model``'s ledger."""
        return entry_message(model, self.seq, self.hash)

    @classmethod
    def next_after(cls, previous: LedgerEntry | None, kind: str, payload: dict[str, Any],
                   at: datetime | None = None) -> LedgerEntry:
        """The entry that follows ``previous`` (or the first one), with its hash filled in (not yet signed)."""
        draft = cls(seq=previous.seq + 1 if previous else 1,
                    prev_hash=previous.hash if previous else GENESIS_HASH,
                    kind=kind, payload=payload, at=at or utcnow())
        return draft.model_copy(update={"hash": draft.computed_hash()})


class ChainProblem(BaseModel):
    """One way the stored ledger differs from an intact chain."""

    key: str
    seq: int | None
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


def signature_problem(model: str, seq: int, entry_hash: str, signature: str,
                      trusted_keys: Sequence[PublicKey]) -> str | None:
    """Why ``signature`` is not the service's signature of entry ``seq`` with ``entry_hash``, if it is not."""
    if not signature:
        return "is not signed by the clearance service"
    try:
        parsed = sshsig.parse(signature)
    except SignatureError as exc:
        return f"has an unreadable signature ({exc})"
    if not any(key.blob == parsed.public_key.blob for key in trusted_keys):
        return f"is signed by {parsed.public_key.fingerprint}, which is not a trusted service key"
    try:
        sshsig.verify(signature, entry_message(model, seq, entry_hash), SERVICE_NAMESPACE, trusted_keys)
    except SignatureError as exc:
        return f"has a signature that does not match it ({exc})"
    return None


def parse_entries(documents: dict[str, bytes]) -> tuple[list[tuple[str, LedgerEntry]], list[ChainProblem]]:
    """The readable entries of ``{object key: bytes}`` (with their keys), and a problem per unreadable one."""
    entries: list[tuple[str, LedgerEntry]] = []
    problems: list[ChainProblem] = []
    for key in sorted(documents):
        try:
            entries.append((key, LedgerEntry.model_validate(json.loads(documents[key]))))
        except (ValueError, ValidationError) as exc:
            problems.append(ChainProblem(key=key, seq=None, problem=f"unreadable entry ({type(exc).__name__})"))
    return entries, problems


def verify_chain(model: str, documents: dict[str, bytes], *, trusted_keys: Sequence[PublicKey] | None,
                 expected_head: tuple[int, str] | None = None) -> list[ChainProblem]:
    """Check a ledger given as ``{object key: bytes}``; an empty list means intact.

    ``trusted_keys``: the service keys whose signatures count (``principals.yaml`` ``service_keys``);
    every entry must carry a valid signature by one of them. ``None`` checks the hash chain only
    (say so explicitly: an offline look at a ledger from before entries were signed).
    ``expected_head`` (seq, hash), e.g. from the production pointer, must be in the chain.
    """
    entries, problems = parse_entries(documents)
    for key, entry in entries:
        if key != ledger_key(model, entry.seq):
            problems.append(ChainProblem(key=key, seq=entry.seq,
                                         problem=f"entry {entry.seq} is stored under the wrong key (inserted?)"))
        if entry.computed_hash() != entry.hash:
            problems.append(ChainProblem(key=key, seq=entry.seq,
                                         problem=f"entry {entry.seq} was altered (hash does not match content)"))
        if trusted_keys is not None:
            problem = signature_problem(model, entry.seq, entry.hash, entry.signature, trusted_keys)
            if problem:
                problems.append(ChainProblem(key=key, seq=entry.seq, problem=f"entry {entry.seq} {problem}"))

    previous: LedgerEntry | None = None
    for key, entry in sorted(entries, key=lambda item: item[1].seq):
        expected_seq = previous.seq + 1 if previous else 1
        if entry.seq > expected_seq:
            missing = ", ".join(str(s) for s in range(expected_seq, entry.seq))
            problems.append(ChainProblem(key=key, seq=entry.seq, problem=f"entry {missing} removed before this one"))
        elif entry.seq < expected_seq:
            problems.append(ChainProblem(key=key, seq=entry.seq, problem=f"entry {entry.seq} appears twice"))
        expected_prev = previous.hash if previous else GENESIS_HASH
        if entry.seq == expected_seq and entry.prev_hash != expected_prev:
            what = f"entry {previous.seq}" if previous else "the start of the ledger"
            problems.append(ChainProblem(key=key, seq=entry.seq,
                                         problem=f"entry {entry.seq} does not follow {what} (inserted or altered)"))
        previous = entry

    if expected_head is not None:
        head_seq, head_hash = expected_head
        stored = {e.seq: e for _, e in entries}
        if head_seq not in stored:
            problems.append(ChainProblem(key=ledger_key(model, head_seq), seq=head_seq,
                                         problem=f"entry {head_seq}, recorded by the production pointer, is missing"))
        elif stored[head_seq].hash != head_hash:
            problems.append(ChainProblem(key=ledger_key(model, head_seq), seq=head_seq,
                                         problem=f"entry {head_seq} differs from the one the production "
                                                 "pointer recorded"))
    return problems

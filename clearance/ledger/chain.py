"""The evidence ledger's hash chain: building entries and proving nothing was changed.

Each entry holds the hash of the one before it, so altering, removing or inserting
an entry breaks the chain at a point :func:`verify_chain` names. Storage lives in
``tasks/ledger.py``; this module is pure so auditors can verify offline copies.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clearance.core.clock import utcnow
from clearance.core.digests import sha256_json
from clearance.core.keys import ledger_key

GENESIS_HASH = "0" * 64


class LedgerEntry(BaseModel):
    """One immutable ledger record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=1)
    prev_hash: str
    kind: str = Field(description="started, gate, approval, promoted, rejected, failed, …")
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)
    hash: str = ""

    def computed_hash(self) -> str:
        """SHA-256 over the canonical JSON of every field but ``hash`` itself."""
        return sha256_json(self.model_dump(mode="json", exclude={"hash"}))

    @classmethod
    def next_after(cls, previous: LedgerEntry | None, kind: str, payload: dict[str, Any],
                   at: datetime | None = None) -> LedgerEntry:
        """The entry that follows ``previous`` (or the first one), with its hash filled in."""
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


def verify_chain(model: str, documents: dict[str, bytes], *, expected_head: tuple[int, str] | None = None
                 ) -> list[ChainProblem]:
    """Check a ledger given as ``{object key: bytes}``; an empty list means intact.

    ``expected_head`` (seq, hash), e.g. from the production pointer, also catches a
    truncated tail, which a chain alone cannot show.
    """
    problems: list[ChainProblem] = []
    entries: list[tuple[str, LedgerEntry]] = []
    for key in sorted(documents):
        try:
            entry = LedgerEntry.model_validate(json.loads(documents[key]))
        except (ValueError, ValidationError) as exc:
            problems.append(ChainProblem(key=key, seq=None, problem=f"unreadable entry ({type(exc).__name__})"))
            continue
        if key != ledger_key(model, entry.seq):
            problems.append(ChainProblem(key=key, seq=entry.seq,
                                         problem=f"entry {entry.seq} is stored under the wrong key (inserted?)"))
        if entry.computed_hash() != entry.hash:
            problems.append(ChainProblem(key=key, seq=entry.seq,
                                         problem=f"entry {entry.seq} was altered (hash does not match content)"))
        entries.append((key, entry))

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

"""Ledger heads kept by witnesses outside the bucket, and what they prove about the stored ledger.

After each append the service publishes the new head — model, sequence number, hash and the
entry's service signature — to witnesses that the bucket's writers cannot rewrite (a second bucket
with its own credentials, Prefect artifacts). A chain alone cannot show that its last entries were
deleted, nor that everything after some entry was replaced by a consistent, re-hashed (and, by an
insider holding the service key, re-signed) chain; a witnessed head can: :func:`check_heads`
names a witnessed entry that is gone (a cut tail) or differs (a rewrite). Pure, like the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from clearance.core.keys import ledger_key
from clearance.identity.sshsig import PublicKey
from clearance.ledger.chain import ChainProblem, LedgerEntry, signature_problem


class WitnessHead(BaseModel):
    """One head of a model's ledger as a witness recorded it (the entry's own signature covers it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    seq: int = Field(ge=1)
    hash: str
    signature: str
    at: datetime | None = Field(None, description="When the entry was appended (informational).")

    @classmethod
    def of(cls, model: str, entry: LedgerEntry) -> WitnessHead:
        """The head that ``entry`` makes."""
        return cls(model=model, seq=entry.seq, hash=entry.hash, signature=entry.signature, at=entry.at)


class WitnessReading(BaseModel):
    """What one witness holds for one model: its heads, or why it could not be read."""

    witness: str
    heads: list[WitnessHead] = Field(default_factory=list)
    error: str | None = None

    @property
    def highest(self) -> int:
        """The highest sequence number this witness saw (0: none)."""
        return max((h.seq for h in self.heads), default=0)


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}–{last}"


def check_heads(model: str, entries: Sequence[LedgerEntry], readings: Sequence[WitnessReading],
                trusted_keys: Sequence[PublicKey]) -> list[ChainProblem]:
    """What the witnesses' heads show about ``entries`` (the stored ledger); empty when they agree.

    A head counts only if the service signed it (a head anyone could write proves nothing and is
    named, not used). Then: a head above the stored last entry means the tail was cut; a head whose
    entry is missing or has another hash means the ledger was rewritten (named from where on, as far
    as the witnessed heads tell).
    """
    stored = {e.seq: e for e in entries}
    last = max(stored, default=0)
    problems: list[ChainProblem] = []
    for reading in readings:
        name = reading.witness
        valid: list[WitnessHead] = []
        for head in sorted(reading.heads, key=lambda h: h.seq):
            if head.model != model:
                continue
            unsigned = signature_problem(model, head.seq, head.hash, head.signature, trusted_keys)
            if unsigned:
                problems.append(ChainProblem(key=f"witness {name}", seq=head.seq,
                                             problem=f"its head for entry {head.seq} {unsigned}; not counted"))
                continue
            valid.append(head)
        if not valid:
            continue
        top = valid[-1]
        if top.seq > last:
            problems.append(ChainProblem(
                key=ledger_key(model, top.seq), seq=top.seq,
                problem=f"{_span(last + 1, top.seq)} removed from the end of the ledger: witness {name} saw "
                        f"entry {top.seq}, the stored ledger ends at {f'entry {last}' if last else 'nothing'}"))
        differing = [h for h in valid if h.seq <= last and (h.seq not in stored or stored[h.seq].hash != h.hash)]
        if differing:
            first = differing[0]
            matching = [h.seq for h in valid if h.seq < first.seq and stored.get(h.seq) is not None
                        and stored[h.seq].hash == h.hash]
            since = matching[-1] + 1 if matching else 1
            where = f"from entry {first.seq}" if since == first.seq else f"from an entry in {since}–{first.seq}"
            seen = (f"entry {first.seq}, which witness {name} saw, is missing" if first.seq not in stored
                    else f"entry {first.seq} differs from the one witness {name} saw")
            problems.append(ChainProblem(
                key=ledger_key(model, first.seq), seq=first.seq,
                problem=f"{seen}: the ledger was rewritten {where} on ({len(differing)} witnessed "
                        f"{'entry differs' if len(differing) == 1 else 'entries differ'})"))
    return problems

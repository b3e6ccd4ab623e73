"""The kinds of entries in a model's evidence ledger."""

from __future__ import annotations

from enum import Enum


class LedgerKind(str, Enum):
    """What a ledger entry records; the value is what is stored in the entry's ``kind``."""

    STARTED = "started"
    GATE = "gate"
    APPROVAL_REQUESTED = "approval-requested"
    APPROVED = "approved"
    #: Intent, written before the production pointer moves: run, version, digest, production keys, the
    #: pointer's key and the ETag the run saw. Not terminal: ``promoted`` (or a failure) closes the run,
    #: and recovery (tasks/recovery.py) closes it when the run ended without doing so.
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    # The ways a run ends without a promotion (each is terminal).
    GATE_FAILED = "gate-failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"
    PROMOTION_FAILED = "promotion-failed"
    FAILED = "failed"
    #: The run's process died without saying so (killed, out of memory, machine lost): written by the
    #: crash sweep (tasks/crashes.py) once Prefect has the run as Crashed.
    CRASHED = "crashed"

    @property
    def terminal(self) -> bool:
        """Whether a run's ledger ends with this entry."""
        return self in TERMINAL


TERMINAL = frozenset({LedgerKind.PROMOTED, LedgerKind.GATE_FAILED, LedgerKind.REJECTED, LedgerKind.TIMED_OUT,
                      LedgerKind.PROMOTION_FAILED, LedgerKind.FAILED, LedgerKind.CRASHED})

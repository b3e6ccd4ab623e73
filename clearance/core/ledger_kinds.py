"""The kinds of entries in a model's evidence ledger.

An entry's payload ``run`` is always the id of the run that wrote it, and every such run ends with one
terminal entry (recovery, tasks/recovery.py, closes runs that could not). An entry about another run
(a reminder about a waiting promotion, a lapse of the live version) names it as ``about_run``.
"""

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
    #: A newer version of the model was approved while this run waited for its sign-off (terminal).
    SUPERSEDED = "superseded"

    # The lifecycle of a production model (flows/recertify.py, flows/rollback.py, the deadline sweep).
    #: A re-certification run passed: the live version is certified until ``certified_until`` (terminal).
    RECERTIFIED = "recertified"
    #: A re-certification run failed: what failed and the policy's ``on_failure`` action (terminal).
    RECERTIFICATION_FAILED = "recertification-failed"
    #: The live version's certification lapsed (expired with no pass, or a failed run lapsed it).
    LAPSED = "lapsed"
    #: A rollback run started: from which live version to which certified one, why, on whose authority.
    ROLLBACK_REQUESTED = "rollback-requested"
    #: Intent, written before a rollback moves the pointer (like ``promoting``; not terminal).
    ROLLING_BACK = "rolling-back"
    #: The pointer was moved back to an earlier certified version (terminal).
    ROLLED_BACK = "rolled-back"
    #: The people a sign-off still needs were reminded (payload ``about_run``: the waiting run).
    REMINDED = "reminded"
    #: A sign-off nobody answered was escalated to its backup group (payload ``about_run``).
    ESCALATED = "escalated"

    @property
    def terminal(self) -> bool:
        """Whether a run's ledger ends with this entry."""
        return self in TERMINAL


TERMINAL = frozenset({LedgerKind.PROMOTED, LedgerKind.GATE_FAILED, LedgerKind.REJECTED, LedgerKind.TIMED_OUT,
                      LedgerKind.PROMOTION_FAILED, LedgerKind.FAILED, LedgerKind.CRASHED, LedgerKind.SUPERSEDED,
                      LedgerKind.RECERTIFIED, LedgerKind.RECERTIFICATION_FAILED, LedgerKind.ROLLED_BACK})
#: Closing entries that make a version live: the production pointer names their run.
LIVE = frozenset({LedgerKind.PROMOTED, LedgerKind.ROLLED_BACK})

"""One approval object, whatever the channel: models and the rules every channel applies."""

from clearance.approvals.models import (
    ApprovalRecord,
    ApprovalRequest,
    Decision,
    Outcome,
    Proof,
    Refusal,
    RefusalReason,
    ReminderSent,
    Vote,
)
from clearance.approvals.rules import Tally, authorise, tally

__all__ = [
    "ApprovalRecord", "ApprovalRequest", "Decision", "Outcome", "Proof", "Refusal", "RefusalReason", "ReminderSent",
    "Tally", "Vote", "authorise", "tally",
]

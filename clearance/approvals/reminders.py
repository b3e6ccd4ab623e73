"""Which reminders and escalations a pending sign-off is due, by its request's ``reminders`` snapshot.

Pure: the deadline sweep (tasks/reminders.py) calls :func:`due_nudges` with the store's clock, records each
nudge in the approvals record with compare-and-swap (the winner alone sends it), then tells the channels.
Times are measured from when the request opened: reminder *n* is due at ``opened_at + after + (n-1)·every``
(only *n* = 1 when ``every`` is unset), the escalation at ``opened_at + escalate_after``. A sweep that was
down for a while sends the latest reminder due, not every one it missed; nothing is due once the request
closed or its deadline passed (the timeout outcome applies then).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clearance.approvals.models import ApprovalRecord, Outcome
from clearance.approvals.rules import tally
from clearance.config.schema import Principals


class Nudge(BaseModel):
    """One reminder or escalation due now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["reminder", "escalation"]
    number: int = Field(ge=1)
    due: datetime
    to: list[str] = Field(description="Principal ids to mention.")
    missing: dict[str, int] = Field(description="Role → approvers still needed.")
    waiting_on: list[str] = Field(default_factory=list,
                                  description="Eligible people who have not answered (what an escalation names).")


def still_needed(record: ApprovalRecord, principals: Principals, now: datetime) -> tuple[dict[str, int], list[str]]:
    """Roles still missing approvers, and the eligible people who could fill them and have not decided."""
    missing = {role: n for role, n in tally(record, now).missing.items() if n > 0}
    decided = {d.principal for d in record.decisions}
    excluded = set(record.request.excluded_principals)
    people = sorted(p.id for p in principals.principals
                    if set(p.roles) & set(missing) and p.id not in excluded and p.id not in decided)
    return missing, people


def due_nudges(record: ApprovalRecord, principals: Principals, now: datetime) -> list[Nudge]:
    """The reminders and escalation due at ``now`` and not yet sent (by kind and number)."""
    request = record.request
    policy = request.reminders
    if record.outcome is not Outcome.PENDING or now >= request.deadline:
        return []
    missing, people = still_needed(record, principals, now)
    if not missing:
        return []
    due: list[Nudge] = []
    if policy.after is not None and people:
        first = request.opened_at + policy.after
        if now >= first:
            number = 1 if policy.every is None else int((now - first) / policy.every) + 1
            at = first if policy.every is None else first + (number - 1) * policy.every
            if not record.sent("reminder", number):
                due.append(Nudge(kind="reminder", number=number, due=at, to=people, missing=missing,
                                 waiting_on=people))
    if policy.escalate_after is not None and policy.escalate_to:
        at = request.opened_at + policy.escalate_after
        if now >= at and not record.sent("escalation", 1):
            due.append(Nudge(kind="escalation", number=1, due=at, to=list(policy.escalate_to), missing=missing,
                             waiting_on=people))
    return due


def nudge_message(nudge: Nudge) -> str:
    """The event's plain-text note (channels escape it): an escalation names who has not answered; a reminder
    needs none (the channels show whom it asks and the roles still missing from the event itself)."""
    if nudge.kind == "reminder":
        return ""
    return f"Not answered: {', '.join(nudge.waiting_on) or 'nobody eligible could answer'}."

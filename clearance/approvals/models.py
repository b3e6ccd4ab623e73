"""The approval domain: what is asked, who decided what, and what was refused."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearance.config.schema import Assurance, Channel, Reminders, TimeoutOutcome
from clearance.core.clock import utcnow


class Vote(str, Enum):
    """What a person decided."""

    APPROVE = "approve"
    REJECT = "reject"


class Outcome(str, Enum):
    """State of an approval request."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    #: Closed because a newer version of the same model was approved while this one waited (never from the
    #: tally: only :func:`tasks.approvals_record.supersede` sets it, and nothing reopens it).
    SUPERSEDED = "superseded"

    @property
    def closed(self) -> bool:
        """Whether the request takes no more decisions."""
        return self is not Outcome.PENDING


class ApprovalRequest(BaseModel):
    """What the approvers are asked to sign off, built from the policy at sign-off time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    model: str
    version: str
    tier: str
    artifact_digest: str = Field(description="Digest over the candidate's artifacts (see tasks.candidate).")
    evidence_digest: str = Field(description="Digest over the gate results the approvers saw.")
    required_roles: dict[str, int] = Field(description="Role → minimum number of distinct approvers.")
    excluded_principals: list[str] = Field(description="The initiator and the model's authors.")
    initiator: str
    channels: list[Channel]
    opened_at: datetime = Field(default_factory=utcnow)
    deadline: datetime
    timeout_outcome: TimeoutOutcome = TimeoutOutcome.REJECT
    assurance: Assurance = Field(Assurance.CLAIMED, description="The least assurance a decision needs to count.")
    initiator_assurance: Assurance = Field(
        Assurance.CLAIMED, description="verified: the initiator signed the start (clearance promote --key).")
    reminders: Reminders = Field(default_factory=Reminders,
                                 description="The policy's approvals.reminders when the request opened (the deadline "
                                             "sweep nudges by it, without reading the configs of the time).")
    action: Literal["promotion", "rollback"] = Field(
        "promotion", description="What is signed off: a promotion of `version`, or a rollback to it (channels "
                                 "title the updates they make outside the run by it).")


class Proof(BaseModel):
    """What makes a stored decision re-checkable without trusting the bucket.

    ``person``: the principal's own SSH signature (namespace ``clearance``) over ``statement``, which
    the decision must match. ``service``: the clearance service key's SSH signature (namespace
    ``clearance-service``) over the decision itself, made after the service verified the channel
    (Slack's signed request, Jira's signed webhook or poll) or recorded a claimed identity.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["person", "service"]
    signature: str = Field(max_length=16_384, description="Armored SSHSIG.")
    statement: dict[str, Any] | None = Field(None, description="What the person signed (person proofs).")


class Decision(BaseModel):
    """A counted decision of one principal through one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    principal: str
    channel: Channel
    vote: Vote
    comment: str = ""
    roles: list[str] = Field(default_factory=list, description="The principal's roles when deciding.")
    artifact_digest: str
    evidence_digest: str
    at: datetime = Field(default_factory=utcnow)
    channel_evidence: dict[str, Any] = Field(
        default_factory=dict, description="e.g. Slack user id and request timestamp, Jira changelog id, OS user."
    )
    dedupe_key: str | None = Field(None, description="Same key twice (a replayed or double click) counts once.")
    assurance: Assurance = Field(Assurance.CLAIMED, description="How the person was established.")
    identity: str = Field("", description="Who the channel says decided (e.g. slack:T0123/U0456, ssh:SHA256:…).")
    proof: Proof | None = None


class RefusalReason(str, Enum):
    """Why a decision was not counted."""

    UNKNOWN_PRINCIPAL = "unknown_principal"
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"
    MISSING_ROLE = "missing_role"
    SELF_APPROVAL = "self_approval"
    ALREADY_COUNTED = "already_counted"
    DIGEST_MISMATCH = "digest_mismatch"
    DEADLINE_PASSED = "deadline_passed"
    REQUEST_CLOSED = "request_closed"
    DUPLICATE = "duplicate"
    ASSURANCE_TOO_LOW = "assurance_too_low"
    START_UNVERIFIED = "start_unverified"
    BAD_PROOF = "bad_proof"


class Refusal(BaseModel):
    """A decision that was refused, kept as evidence with the reason told to the person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principal: str | None
    identity: str = Field(description="How the channel identified the person (OS user, Slack id…).")
    channel: Channel
    vote: Vote
    reason: RefusalReason
    message: str
    at: datetime = Field(default_factory=utcnow)
    channel_evidence: dict[str, Any] = Field(default_factory=dict)
    dedupe_key: str | None = None


class ReminderSent(BaseModel):
    """One nudge sent about a pending request: kept in the record, so no sweep sends the same one twice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["reminder", "escalation"]
    number: int = Field(ge=1, description="1 for the first reminder, 2 for the next (escalations: always 1).")
    at: datetime
    to: list[str] = Field(description="Principal ids told.")
    missing: dict[str, int] = Field(default_factory=dict, description="Role → approvers still needed then.")


class ApprovalRecord(BaseModel):
    """The truth about one sign-off: stored per run, updated only by compare-and-swap."""

    model_config = ConfigDict(extra="forbid")

    request: ApprovalRequest
    decisions: list[Decision] = Field(default_factory=list)
    refusals: list[Refusal] = Field(default_factory=list)
    outcome: Outcome = Outcome.PENDING
    closed_at: datetime | None = None
    closed_by: list[str] = Field(default_factory=list, description="Principals whose decisions closed it.")
    closing_channel: Channel | None = None
    reminders: list[ReminderSent] = Field(default_factory=list, description="Reminders and escalations sent.")

    def sent(self, kind: str, number: int) -> bool:
        """Whether that reminder (or escalation) was already sent."""
        return any(r.kind == kind and r.number == number for r in self.reminders)

    def seen(self, dedupe_key: str | None) -> Decision | Refusal | None:
        """The decision or refusal already recorded under ``dedupe_key`` (replays are answered, not re-recorded)."""
        if dedupe_key is None:
            return None
        items: list[Decision | Refusal] = [*self.decisions, *self.refusals]
        return next((item for item in items if item.dedupe_key == dedupe_key), None)

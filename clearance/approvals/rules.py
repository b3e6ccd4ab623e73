"""The rules every channel applies: who may decide, and when a request is decided.

Pure functions over :class:`ApprovalRecord`: the CLI, the Prefect UI form, Slack and
Jira all call :func:`authorise` and :func:`tally`, so a rule changes in one place.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from clearance.approvals.models import ApprovalRecord, Channel, Outcome, RefusalReason, Vote
from clearance.config.schema import Assurance, Principal, TimeoutOutcome
from clearance.core.versions import compare_versions


class Tally(BaseModel):
    """Where a request stands: its outcome and, per role, who counts and how many are missing."""

    outcome: Outcome
    counted: dict[str, list[str]]
    missing: dict[str, int]
    rejected_by: list[str]


def authorise(record: ApprovalRecord, principal: Principal | None, channel: Channel, vote: Vote,
              artifact_digest: str, now: datetime, dedupe_key: str | None = None,
              assurance: Assurance = Assurance.CLAIMED) -> tuple[RefusalReason, str] | None:
    """``None`` when the decision may be counted, else the reason and a message for the person."""
    request = record.request
    if dedupe_key is not None and any(d.dedupe_key == dedupe_key for d in record.decisions):
        return RefusalReason.DUPLICATE, "this request was already received and counted once"
    if principal is None:
        return RefusalReason.UNKNOWN_PRINCIPAL, "you are not a known principal (principals.yaml)"
    if record.outcome.closed:
        return RefusalReason.REQUEST_CLOSED, f"this approval request is already closed ({record.outcome.value})"
    if now > request.deadline:
        return RefusalReason.DEADLINE_PASSED, f"the deadline {request.deadline.isoformat()} has passed"
    if channel not in request.channels:
        allowed = ", ".join(c.value for c in request.channels)
        return RefusalReason.CHANNEL_NOT_ALLOWED, f"the {request.tier} policy does not take decisions via " \
                                                  f"{channel.value} (allowed: {allowed})"
    if request.assurance is Assurance.VERIFIED and request.initiator_assurance is not Assurance.VERIFIED:
        return RefusalReason.START_UNVERIFIED, (
            f"this promotion was started without a verified initiator (e.g. from the Prefect UI or the API as "
            f"{request.initiator!r}); the {request.tier} tier signs off only promotions whose initiator is known, "
            "so nobody can approve their own: start it again with `clearance promote --key`")
    if not assurance.at_least(request.assurance):
        return RefusalReason.ASSURANCE_TOO_LOW, (
            f"the {request.tier} tier counts only verified decisions; {channel.value} identified you by a "
            "claimed identity (sign with your SSH key: clearance approve --key, or use a pinned channel)")
    if principal.id in request.excluded_principals:
        why = "initiated this promotion" if principal.id == request.initiator else "are an author of this model"
        return RefusalReason.SELF_APPROVAL, f"{principal.id} may not decide: you {why}"
    if not set(principal.roles) & set(request.required_roles):
        needed = ", ".join(sorted(request.required_roles))
        return RefusalReason.MISSING_ROLE, f"{principal.id} holds none of the required roles ({needed})"
    if any(d.principal == principal.id for d in record.decisions):
        return RefusalReason.ALREADY_COUNTED, f"{principal.id} has already decided on this request"
    if artifact_digest != request.artifact_digest:
        return RefusalReason.DIGEST_MISMATCH, (
            f"you decided on artifact {artifact_digest[:12]}…, but this request is for "
            f"{request.artifact_digest[:12]}…")
    return None


def tally(record: ApprovalRecord, now: datetime) -> Tally:
    """The request's outcome from its counted decisions (and the clock, for the deadline)."""
    request = record.request
    rejected_by = [d.principal for d in record.decisions if d.vote is Vote.REJECT]
    approvers = {d.principal: d.roles for d in record.decisions if d.vote is Vote.APPROVE}
    assignment = _assign_roles(approvers, request.required_roles)
    counted = {role: sorted(p for p, r in assignment.items() if r == role) for role in request.required_roles}
    missing = {role: max(0, need - len(counted[role])) for role, need in request.required_roles.items()}
    if rejected_by:
        outcome = Outcome.REJECTED
    elif not any(missing.values()):
        outcome = Outcome.APPROVED
    elif now > request.deadline:
        outcome = Outcome.APPROVED if request.timeout_outcome is TimeoutOutcome.APPROVE else Outcome.TIMED_OUT
    else:
        outcome = Outcome.PENDING
    return Tally(outcome=outcome, counted=counted, missing=missing, rejected_by=rejected_by)


def _assign_roles(approvers: dict[str, list[str]], required: dict[str, int]) -> dict[str, str]:
    """Give each approver at most one role so that as many role slots as possible are filled.

    A person holding two roles counts once: two-person rules need two people. This is
    bipartite matching (people → role slots) by augmenting paths; sizes are tiny.
    """
    slots = [role for role, need in sorted(required.items()) for _ in range(need)]
    slot_owner: dict[int, str] = {}

    def place(person: str, seen: set[int]) -> bool:
        for index, role in enumerate(slots):
            if role in approvers[person] and index not in seen:
                seen.add(index)
                if index not in slot_owner or place(slot_owner[index], seen):
                    slot_owner[index] = person
                    return True
        return False

    for person in sorted(approvers):
        place(person, set())
    return {person: slots[index] for index, person in slot_owner.items()}


def downgrade_refusal(model: str, version: str, live: str | None, mode: str, allowed: bool) -> str | None:
    """Why promoting ``version`` over the ``live`` one is refused (a downgrade), if it is.

    ``mode`` is the policy's ``promotion.downgrades``: ``refuse`` never lets a lower version be promoted
    (``clearance rollback`` is the way back: it checks the old copy and asks its own sign-off),
    ``explicit`` only with ``allowed`` (``--allow-downgrade``, recorded in the run's ``started`` entry).
    Versions that are not PEP 440 have no order, so they are never called a downgrade.
    """
    if live is None or compare_versions(version, live) != -1:
        return None
    if mode == "refuse":
        return (f"{version} is lower than the live {live}, and this tier refuses downgrades: to go back to an "
                f"earlier version use `clearance rollback {model} --to {version}`")
    if not allowed:
        return (f"{version} is lower than the live {live}: promote it only on purpose, with --allow-downgrade "
                f"(recorded), or go back with `clearance rollback {model} --to {version}`")
    return None

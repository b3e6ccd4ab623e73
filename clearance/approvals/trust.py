"""Re-checking an approvals record without trusting the bucket it came from.

Anyone who can write the bucket can put a record with invented decisions. So the flow and
``clearance audit verify`` never take a stored record at its word: :func:`trusted_record` keeps
only decisions whose proof verifies against keys from the configs (people's SSH keys and the
service keys in ``principals.yaml``), whose assurance the request accepts, and whose principal
may decide; it takes the request and the roles from the caller (the flow built them from the
configs), and recomputes the outcome. Everything it drops is named.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from clearance.approvals.models import ApprovalRecord, ApprovalRequest, Decision, Outcome
from clearance.approvals.rules import tally
from clearance.config.schema import Assurance, Principals
from clearance.identity.sshsig import PublicKey, SignatureError, verify
from clearance.identity.statements import (
    MAX_CLOCK_SKEW_SECONDS,
    PERSON_NAMESPACE,
    SERVICE_NAMESPACE,
    DecisionStatement,
    decision_payload,
)


def service_keys(principals: Principals, extra: Iterable[PublicKey] = ()) -> list[PublicKey]:
    """The service keys a verifier trusts: those pinned in ``principals.yaml`` and any given."""
    return [*(PublicKey.parse(line) for line in principals.service_keys), *extra]


def person_statement_problem(statement: DecisionStatement, signature: str, principals: Principals,
                             *, run_id: str, now: datetime) -> str | None:
    """Why a person's signed statement does not hold for ``run_id`` now, if it does not."""
    principal = principals.by_id(statement.principal)
    if principal is None:
        return f"{statement.principal!r} is not a principal"
    if not principal.ssh_keys:
        return f"{principal.id} has no ssh_keys in principals.yaml"
    try:
        verify(signature, statement.payload(), PERSON_NAMESPACE, principal.public_keys())
    except SignatureError as exc:
        return f"signature: {exc}"
    if statement.run_id != run_id:
        return f"signed for run {statement.run_id}, not {run_id}"
    skew = abs((now - statement.signed_at).total_seconds())
    if skew > MAX_CLOCK_SKEW_SECONDS:
        return f"signed {skew:.0f} s away from the server's clock (at most {MAX_CLOCK_SKEW_SECONDS} s)"
    return None


def proof_problem(decision: Decision, request: ApprovalRequest, principals: Principals,
                  trusted_service_keys: list[PublicKey]) -> str | None:
    """Why ``decision``'s proof does not hold, or ``None`` when it does."""
    proof = decision.proof
    if proof is None:
        return "it carries no proof (written outside clearance?)"
    if proof.kind == "person":
        try:
            statement = DecisionStatement.model_validate(proof.statement or {})
        except ValueError:
            return "its signed statement is unreadable"
        problem = person_statement_problem(statement, proof.signature, principals, run_id=request.run_id,
                                           now=decision.at)
        if problem:
            return problem
        signed = (statement.principal, statement.vote, statement.artifact_digest, statement.comment)
        recorded = (decision.principal, decision.vote.value, decision.artifact_digest, decision.comment)
        if signed != recorded:
            return "the decision differs from what the person signed"
        return None
    if not trusted_service_keys:
        return "no service key is trusted (principals.yaml service_keys)"
    try:
        verify(proof.signature, decision_payload(decision.model_dump(mode="json")), SERVICE_NAMESPACE,
               trusted_service_keys)
    except SignatureError as exc:
        return f"service signature: {exc}"
    return None


def trusted_record(stored: ApprovalRecord, request: ApprovalRequest, principals: Principals,
                   trusted_service_keys: list[PublicKey], now: datetime) -> tuple[ApprovalRecord, list[str]]:
    """The record as the configs and the proofs support it, and why each dropped decision was dropped."""
    problems: list[str] = []
    kept: list[Decision] = []
    if request.assurance is Assurance.VERIFIED and request.initiator_assurance is not Assurance.VERIFIED:
        problems += [f"decision {d.id[:8]} by {d.principal} not counted: the run's initiator is not verified"
                     for d in stored.decisions]
        stored = stored.model_copy(update={"decisions": []})
    for decision in stored.decisions:
        where = f"decision {decision.id[:8]} ({decision.vote.value} by {decision.principal} via " \
                f"{decision.channel.value})"
        problem = proof_problem(decision, request, principals, trusted_service_keys)
        principal = principals.by_id(decision.principal)
        if problem is None and principal is None:
            problem = "its principal is not in principals.yaml"
        if problem is None and not decision.assurance.at_least(request.assurance):
            problem = f"its identity is {decision.assurance.value}; the {request.tier} tier counts only " \
                      f"{request.assurance.value} decisions"
        if problem is None and decision.principal in request.excluded_principals:
            problem = "its principal may not decide on this request"
        if problem is None and decision.artifact_digest != request.artifact_digest:
            problem = "it approved another artifact digest"
        if problem is None and decision.channel not in request.channels:
            problem = "its channel is not allowed by the policy"
        if problem is None and decision.at > request.deadline:
            problem = f"it was made after the deadline {request.deadline.isoformat()}"
        if problem is not None or principal is None:
            problems.append(f"{where} not counted: {problem}")
            continue
        kept.append(decision.model_copy(update={"roles": list(principal.roles)}))
    record = ApprovalRecord(request=request, decisions=kept, refusals=stored.refusals, reminders=stored.reminders)
    if stored.outcome is Outcome.SUPERSEDED:
        # Taken at its word: superseded only ever stops a run (it can promote nothing), and nothing reopens it.
        record.outcome, record.closed_at, record.closed_by = stored.outcome, stored.closed_at or now, stored.closed_by
        return record, problems
    state = tally(record, now)
    record.outcome = state.outcome
    if state.outcome is not Outcome.PENDING:
        same = stored.outcome is state.outcome
        record.closed_at = stored.closed_at if same and stored.closed_at else now
        record.closed_by = stored.closed_by if same else (state.rejected_by or sorted(
            p for people in state.counted.values() for p in people))
        record.closing_channel = stored.closing_channel if same else None
    return record, problems


def least_assurance(decisions: Iterable[Decision]) -> Assurance | None:
    """The weakest assurance among ``decisions`` (``None`` when there are none)."""
    levels = {d.assurance for d in decisions}
    if not levels:
        return None
    return Assurance.CLAIMED if Assurance.CLAIMED in levels else Assurance.VERIFIED

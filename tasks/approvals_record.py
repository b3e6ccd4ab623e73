"""The approvals record of one run, in the object store, changed only by compare-and-swap.

Every channel ends here: :func:`submit_decision` authorises with the shared rules,
appends a Decision or a Refusal, recomputes the outcome, and writes with ``IfMatch``
so two approvers clicking at once both count.

Every recorded decision carries its proof: the person's own SSH signature (verified here before it
is recorded), or else the service key's signature over the decision, made after the channel
verified the person (or recorded a claimed identity). Without a service key configured, only
person-signed decisions can be recorded. Readers re-check the proofs
(:func:`clearance.approvals.trust.trusted_record`), so the record is not trusted for being in the bucket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from clearance.approvals import (
    ApprovalRecord,
    ApprovalRequest,
    Decision,
    Outcome,
    Proof,
    Refusal,
    RefusalReason,
    ReminderSent,
    Vote,
    authorise,
    tally,
)
from clearance.approvals.reminders import Nudge
from clearance.approvals.trust import person_statement_problem, proof_problem, service_keys
from clearance.config.schema import Assurance, Channel, Principal, Principals
from clearance.core.clock import utcnow
from clearance.core.keys import approvals_key
from clearance.identity.statements import DecisionStatement, decision_payload
from tasks.signing import ServiceSigner, own_public_keys, service_signer
from tasks.store import ObjectExists, PreconditionFailed, Store

_MAX_CAS_ATTEMPTS = 50


class SubmitResult(BaseModel):
    """What happened to one submitted decision."""

    record: ApprovalRecord
    decision: Decision | None = None
    refusal: Refusal | None = None
    outcome_changed: bool = False

    @property
    def accepted(self) -> bool:
        """Whether the decision was counted."""
        return self.decision is not None


def open_record(store: Store, request: ApprovalRequest) -> ApprovalRecord:
    """Create the run's record, or return the existing one (a resumed run reopens the same request)."""
    key = approvals_key(request.model, request.version, request.run_id)
    try:
        store.put_if_absent(key, ApprovalRecord(request=request).model_dump_json().encode(),
                            content_type="application/json")
    except ObjectExists:
        pass
    return read_record(store, key)[0]


def read_record(store: Store, key: str) -> tuple[ApprovalRecord, str]:
    """The record and its ETag (for the next compare-and-swap)."""
    body, etag = store.get_bytes(key)
    return ApprovalRecord.model_validate_json(body), etag


def submit_decision(store: Store, key: str, *, principal: Principal | None, identity: str,
                    channel: Channel, vote: Vote, artifact_digest: str, comment: str = "",
                    channel_evidence: dict[str, Any] | None = None, dedupe_key: str | None = None,
                    now: datetime | None = None, assurance: Assurance = Assurance.CLAIMED,
                    signed: tuple[DecisionStatement, str] | None = None, principals: Principals | None = None,
                    signer: ServiceSigner | None = None) -> SubmitResult:
    """Authorise and record one decision (or its refusal); retried until the CAS write wins.

    ``signed`` is a person's ``(statement, armored signature)``: it is verified against the
    principal's keys in ``principals`` and makes the decision ``verified``. Without it the decision
    is attested by the service key (``signer``, default: the configured one) at ``assurance``.
    """
    signer = signer or service_signer()
    principals = principals or _configured_principals()
    for _ in range(_MAX_CAS_ATTEMPTS):
        record, etag = read_record(store, key)
        record = _proven(record, principals, now or utcnow())
        earlier = record.seen(dedupe_key)
        if isinstance(earlier, Decision):
            return SubmitResult(record=record, decision=earlier)
        if isinstance(earlier, Refusal):
            return SubmitResult(record=record, refusal=earlier)
        moment = now or utcnow()
        before = record.outcome
        proof: Proof | None = None
        if signed is not None:
            statement, signature = signed
            assurance = Assurance.VERIFIED
            proof = Proof(kind="person", signature=signature, statement=statement.model_dump(mode="json"))
        refused = authorise(record, principal, channel, vote, artifact_digest, moment, dedupe_key, assurance)
        if refused is None:
            refused = _proof_refusal(record, principal, signed, principals, signer, moment, vote, artifact_digest,
                                     comment)
        result: SubmitResult
        if refused is not None:
            reason, message = refused
            refusal = Refusal(principal=principal.id if principal else None, identity=identity, channel=channel,
                              vote=vote, reason=reason, message=message, at=moment,
                              channel_evidence=channel_evidence or {}, dedupe_key=dedupe_key)
            record.refusals.append(refusal)
            result = SubmitResult(record=record, refusal=refusal)
        else:
            assert principal is not None
            decision = Decision(principal=principal.id, channel=channel, vote=vote, comment=comment,
                                roles=list(principal.roles), artifact_digest=artifact_digest,
                                evidence_digest=record.request.evidence_digest, at=moment,
                                channel_evidence=channel_evidence or {}, dedupe_key=dedupe_key,
                                assurance=assurance, identity=identity, proof=proof)
            if proof is None:
                assert signer is not None, "_proof_refusal refuses unsigned decisions without a service key"
                payload = decision_payload(decision.model_dump(mode="json"))
                attested = Proof(kind="service", signature=signer.sign(payload))
                decision = decision.model_copy(update={"proof": attested})
            record.decisions.append(decision)
            _close_if_decided(record, moment, channel)
            result = SubmitResult(record=record, decision=decision, outcome_changed=record.outcome != before)
        try:
            store.put_if_match(key, record.model_dump_json().encode(), etag)
        except PreconditionFailed:
            continue  # someone else wrote in between: re-read and decide again
        return result
    raise RuntimeError(f"could not record the decision in {key}: too many concurrent writers")


def _configured_principals() -> Principals | None:
    """principals.yaml of the settings' config dir (``None`` when it cannot be read: proofs then go unchecked
    here, and the flow, which always has the configs, still re-checks them)."""
    from clearance.config import ConfigError
    from tasks.wiring import config_set

    try:
        return config_set().principals
    except (ConfigError, OSError):
        return None


def _proven(record: ApprovalRecord, principals: Principals | None, now: datetime) -> ApprovalRecord:
    """The record without decisions whose proof fails, its outcome recomputed (the stored one is not trusted).

    Someone with write access to the bucket can add decisions or set ``outcome`` directly; without this a
    forged "approved" would close the request to real decisions. What is dropped here is dropped from
    the bucket at the next write too.
    """
    if principals is None:
        return record
    keys = service_keys(principals, own_public_keys())
    kept = [d for d in record.decisions if proof_problem(d, record.request, principals, keys) is None]
    if record.outcome is Outcome.SUPERSEDED:  # closed for good: never reopened by recomputing the tally
        return record if len(kept) == len(record.decisions) else record.model_copy(update={"decisions": kept})
    if len(kept) == len(record.decisions) and (record.outcome is Outcome.PENDING) == (
            tally(record, now).outcome is Outcome.PENDING):
        return record
    fresh = record.model_copy(update={"decisions": kept, "outcome": Outcome.PENDING, "closed_at": None,
                                      "closed_by": [], "closing_channel": None})
    _close_if_decided(fresh, now, record.closing_channel)
    return fresh


def _proof_refusal(record: ApprovalRecord, principal: Principal | None, signed: tuple[DecisionStatement, str] | None,
                   principals: Principals | None, signer: ServiceSigner | None, now: datetime, vote: Vote,
                   artifact_digest: str, comment: str) -> tuple[RefusalReason, str] | None:
    """Why the decision cannot carry a proof that holds, if it cannot."""
    if signed is None:
        if signer is None:
            return RefusalReason.BAD_PROOF, ("this clearance has no service key (CLEARANCE_SERVICE_KEY_FILE) to attest "
                                             "the decision; sign it with your SSH key instead")
        return None
    statement, signature = signed
    if principals is None:
        return RefusalReason.BAD_PROOF, "no principals to check the signature against"
    problem = person_statement_problem(statement, signature, principals, run_id=record.request.run_id, now=now)
    if problem is None and principal is not None and statement.principal != principal.id:
        problem = f"signed as {statement.principal}, submitted as {principal.id}"
    if problem is None and (statement.vote, statement.artifact_digest, statement.comment) != (
            vote.value, artifact_digest, comment):
        problem = "the submitted decision differs from what was signed"
    if problem is None and statement.purpose != "decision":
        problem = "the signed statement is not a decision"
    return (RefusalReason.BAD_PROOF, f"signature not accepted: {problem}") if problem else None


def close_if_due(store: Store, key: str, now: datetime | None = None) -> ApprovalRecord:
    """Apply the deadline: a pending record past its deadline takes the policy's timeout outcome."""
    for _ in range(_MAX_CAS_ATTEMPTS):
        record, etag = read_record(store, key)
        moment = now or utcnow()
        if record.outcome.closed or not _close_if_decided(record, moment, None):
            return record
        try:
            store.put_if_match(key, record.model_dump_json().encode(), etag)
        except PreconditionFailed:
            continue
        return record
    raise RuntimeError(f"could not close {key}: too many concurrent writers")


def _close_if_decided(record: ApprovalRecord, now: datetime, channel: Channel | None) -> bool:
    """Set outcome/closed_* from the tally; ``True`` when the record just closed."""
    current = tally(record, now)
    if current.outcome is Outcome.PENDING or record.outcome.closed:
        return False
    record.outcome = current.outcome
    record.closed_at = now
    record.closing_channel = channel
    if current.outcome is Outcome.REJECTED:
        record.closed_by = current.rejected_by
    elif current.outcome is Outcome.APPROVED and not any(current.missing.values()):
        record.closed_by = sorted({p for people in current.counted.values() for p in people})
    else:
        record.closed_by = ["deadline"]
    return True


def record_nudge(store: Store, key: str, nudge: Nudge, now: datetime) -> ApprovalRecord | None:
    """Append ``nudge`` to the record as sent (compare-and-swap); ``None`` when it must not go out.

    ``None`` when another sweep recorded the same nudge first (kind and number), or the request is no
    longer pending: only the writer that recorded it sends it, so two sweeps never remind twice.
    """
    for _ in range(_MAX_CAS_ATTEMPTS):
        record, etag = read_record(store, key)
        if record.outcome.closed or record.sent(nudge.kind, nudge.number):
            return None
        record.reminders.append(ReminderSent(kind=nudge.kind, number=nudge.number, at=now, to=nudge.to,
                                             missing=nudge.missing))
        try:
            store.put_if_match(key, record.model_dump_json().encode(), etag)
        except PreconditionFailed:
            continue
        return record
    raise RuntimeError(f"could not record the reminder in {key}: too many concurrent writers")


def supersede(store: Store, key: str, by_version: str, by_run: str, now: datetime) -> ApprovalRecord | None:
    """Close a pending request as superseded by ``by_version`` (run ``by_run``); ``None`` when it is not pending.

    A request whose decisions or deadline already decide it (the tally by ``now``) is left for them: it is not
    superseded, it closes as they say (the sweep or the next decision writes that).
    """
    for _ in range(_MAX_CAS_ATTEMPTS):
        record, etag = read_record(store, key)
        if record.outcome.closed or tally(record, now).outcome is not Outcome.PENDING:
            return None
        record.outcome = Outcome.SUPERSEDED
        record.closed_at = now
        record.closed_by = [f"superseded by {by_version} (run {by_run})"]
        record.closing_channel = None
        try:
            store.put_if_match(key, record.model_dump_json().encode(), etag)
        except PreconditionFailed:
            continue
        return record
    raise RuntimeError(f"could not supersede {key}: too many concurrent writers")

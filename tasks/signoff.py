"""Prefect tasks around the approvals record (the waiting itself happens in the flow).

Deadlines are applied by the object store's clock (:meth:`tasks.store.Store.server_time`), the one
the intake times decisions with, never by the clock of the machine running the flow.
"""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from clearance.approvals import ApprovalRecord, ApprovalRequest, Vote
from clearance.approvals.models import Refusal
from clearance.approvals.trust import service_keys, trusted_record
from clearance.config.schema import Assurance, Channel, Principals
from clearance.core.digests import canonical_json
from clearance.core.keys import approvals_key, run_index_key
from tasks.approval_intake import receive_decision
from tasks.approvals_record import close_if_due, open_record
from tasks.caching import per_run_key
from tasks.evidence import store
from tasks.prefect_tasks import task
from tasks.signing import own_public_keys


@task(name="sign-off-opens-at", persist_result=True, cache_key_fn=per_run_key)
def sign_off_opens_at() -> datetime:
    """When this run's sign-off opens, by the store's clock, read once per run.

    A resumed deployment run re-runs the flow from the top; taking the time again would build a
    different request, and every task keyed on it (``open-approval-request`` first) would run again.
    """
    return store_time()


@task(name="open-approval-request", persist_result=True, cache_key_fn=per_run_key)
def open_approval(request: ApprovalRequest) -> str:
    """Create the run's approvals record and its run index; returns the record key."""
    open_record(store(), request)
    index = {"run_id": request.run_id, "model": request.model, "version": request.version,
             "record": approvals_key(request.model, request.version, request.run_id)}
    try:
        store().put_if_absent(run_index_key(request.run_id), canonical_json(index), content_type="application/json")
    except Exception as exc:  # noqa: BLE001 — an index left by an earlier attempt of this run is fine
        if "exists" not in type(exc).__name__.lower():
            raise
    return index["record"]


@task(name="read-approvals", cache_policy=NO_CACHE)
def refresh_record(key: str, request: ApprovalRequest, principals: Principals) -> ApprovalRecord:
    """Re-read the record, apply the deadline, and keep only what its proofs and the configs support.

    The stored record is not trusted for being in the bucket: decisions whose proof does not verify
    (or that the request does not accept) are dropped and named in the run's log, and the outcome is
    recomputed from what is left (:func:`clearance.approvals.trust.trusted_record`).
    """
    now = store_time()
    stored = close_if_due(store(), key, now=now)
    record, problems = trusted_record(stored, request, principals,
                                      service_keys(principals, own_public_keys()), now)
    for problem in problems:
        get_run_logger().warning("approvals record %s: %s", key, problem)
    return record


@task(name="read-approval-request", cache_policy=NO_CACHE)
def opened_request(key: str, built: ApprovalRequest) -> ApprovalRequest:
    """The request as first opened (a resumed run keeps its deadline), checked against the one built now.

    The stored request may only differ from ``built`` in when it opened; anything else (roles, people,
    digests, channels, assurance) means it was edited in the bucket, and ``built`` is used instead.
    """
    stored = close_if_due(store(), key, now=store_time()).request
    fixed = ("opened_at", "deadline", "reminders")  # the reminders copied when it opened stay with it
    if stored.model_dump(exclude=set(fixed)) != built.model_dump(exclude=set(fixed)):
        get_run_logger().warning("approvals record %s: its request differs from the policy's; using the policy's",
                                 key)
        return built
    longest = built.deadline - built.opened_at
    return stored.model_copy(update={"deadline": min(stored.deadline, stored.opened_at + longest)})


@task(name="prefect-ui-decision", cache_policy=NO_CACHE)
def submit_form_decision(run_id: str, principals: Principals, approver: str, vote: Vote, comment: str,
                         artifact_digest: str, pause_key: str) -> Refusal | None:
    """Count a decision made in the paused run's Prefect UI form (channel ``prefect-ui``).

    It goes through the intake like every channel's (same rules, the store's clock, the
    ``approvals-changed`` event that refreshes the Slack and Jira tallies), without a wake-up: this
    run is the one waiting. The principal id is typed into the form, not proven, so the identity is
    ``claimed`` (``prefect-ui:<typed id>``): a tier that counts only verified decisions refuses it.
    """
    result = receive_decision(
        store(), run_id, principal=principals.by_id(approver), identity=f"prefect-ui:{approver}",
        channel=Channel.PREFECT_UI, vote=vote, comment=comment, artifact_digest=artifact_digest,
        channel_evidence={"form": pause_key}, dedupe_key=f"prefect-ui:{pause_key}", wake=False,
        assurance=Assurance.CLAIMED,
    )
    return result.refusal


def store_time() -> datetime:
    """The object store's clock now (raises when the store cannot tell it; never the local clock)."""
    return store().server_time()

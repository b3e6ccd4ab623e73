"""Prefect tasks around the approvals record (the waiting itself happens in the flow)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from clearance.approvals import ApprovalRecord, ApprovalRequest, Vote
from clearance.approvals.models import Refusal
from clearance.config.schema import Channel, Principals
from clearance.core.digests import canonical_json
from clearance.core.keys import approvals_key, run_index_key
from tasks.approvals_record import close_if_due, open_record, submit_decision
from tasks.caching import per_run_key
from tasks.evidence import store


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
def refresh_record(key: str) -> ApprovalRecord:
    """Re-read the record, applying the deadline if it has passed."""
    return close_if_due(store(), key)


@task(name="prefect-ui-decision", cache_policy=NO_CACHE)
def submit_form_decision(key: str, principals: Principals, approver: str, vote: Vote, comment: str,
                         artifact_digest: str, pause_key: str) -> Refusal | None:
    """Count a decision made in the paused run's Prefect UI form (channel ``prefect-ui``)."""
    principal = principals.by_id(approver)
    result = submit_decision(
        store(), key, principal=principal, identity=approver, channel=Channel.PREFECT_UI, vote=vote,
        artifact_digest=artifact_digest, comment=comment,
        channel_evidence={"form": pause_key}, dedupe_key=f"prefect-ui:{pause_key}",
    )
    return result.refusal

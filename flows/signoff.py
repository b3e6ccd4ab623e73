"""Waiting for the human sign-off inside a promotion run.

The approvals record in the object store is the truth; Prefect's pause is only the
doorbell. The flow reads the record, and while it is pending waits to be woken:
``suspend_flow_run`` for deployment runs (no process held; the run restarts from the
top and finished tasks come from their persisted results), ``pause_flow_run`` with a
short poll for direct runs. Every wake-up re-reads the record, so a lost or duplicate
wake-up changes nothing.
"""

from __future__ import annotations

from typing import Literal, cast

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from clearance.approvals import ApprovalRecord, ApprovalRequest, Vote
from clearance.config.schema import Principals
from clearance.render.signoff_form import form_markdown
from clearance.settings import get_settings
from tasks.signoff import refresh_record, store_time, submit_form_decision

# Bounded pauses: a direct run re-reads the record at least this often even without a wake-up.
MAX_PAUSE_SECONDS = 3600


class SignOffForm(RunInput):
    """The form the Prefect UI shows on a promotion waiting for sign-off (channel ``prefect-ui``).

    Every field is optional: the CLI, Slack and Jira resume the run with an empty
    input, which only means "re-read the approvals record". The principal id is typed, not
    proven, so a form decision is a *claimed* identity: tiers that count only verified
    decisions refuse it.
    """

    approver: str = Field("", description="Your principal id from principals.yaml.")
    decision: Literal["", "approve", "reject"] = Field(
        "", description="approve or reject this version (empty: only re-check the record).")
    comment: str = Field("", description="Why (required to reject).")


def running_from_deployment() -> bool:
    """Whether this run was created from a deployment (and so can be suspended)."""
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def wait_for_sign_off(key: str, request: ApprovalRequest, principals: Principals) -> ApprovalRecord:
    """Block (or suspend) until the request at ``key`` is approved, rejected or timed out."""
    suspend = running_from_deployment()
    # Prefect types poll_interval as int but only sleeps on it: sub-second polls work and cut resume latency
    # (hence the cast where it is passed).
    poll = max(0.2, get_settings().approval_poll_seconds)
    wait_number = 0
    while True:
        record = refresh_record(key, request, principals)
        if record.outcome.closed:
            return record
        wait_number += 1
        pause_key = f"sign-off-{wait_number}"
        remaining = (request.deadline - store_time()).total_seconds()  # the deadline's clock: the store's
        form = SignOffForm.with_initial_data(description=form_markdown(record, store_time()), approver="",
                                             decision="", comment="")
        try:
            if suspend:
                # No timeout on the suspension itself: the deadline is applied by re-reading the
                # record, and `clearance sweep` (a scheduled deployment) wakes runs past their deadline.
                answer = suspend_flow_run(wait_for_input=form, key=pause_key, timeout=None)
            else:
                answer = pause_flow_run(wait_for_input=form, key=pause_key, poll_interval=cast(int, poll),
                                        timeout=int(min(max(remaining, 0), MAX_PAUSE_SECONDS)) + 1)
        except FlowPauseTimeout:
            continue
        if answer.approver or answer.decision:
            problem = _form_problem(answer)
            if problem:
                tell_refused(f"Prefect UI sign-off form ignored: {problem}")
                continue
            assert answer.approver and answer.decision, "_form_problem requires both approver and decision"
            refusal = submit_form_decision(request.run_id, principals, answer.approver, Vote(answer.decision),
                                           answer.comment, request.artifact_digest, pause_key)
            if refusal is not None:
                tell_refused(f"Prefect UI decision by {answer.approver!r} not counted ({refusal.reason.value}): "
                             f"{refusal.message}")


def tell_refused(message: str) -> None:
    """A submission that did not count is said where the person looks: a warning in the run's log and a
    ``sign-off-refused`` artifact on the run page (the form itself only shows the latest tally when reopened)."""
    from prefect.artifacts import create_markdown_artifact

    from clearance.render.markdown import escape

    get_run_logger().warning(message)
    create_markdown_artifact(key="sign-off-refused", markdown=f"**Not counted.** {escape(message)}",
                             description="the last sign-off form submission that did not count")


def _form_problem(answer: SignOffForm) -> str | None:
    """Why a submitted form cannot be a decision (incomplete), if it cannot."""
    if not answer.approver or not answer.decision:
        return "both 'approver' and 'decision' are needed"
    if answer.decision == "reject" and not answer.comment.strip():
        return "a rejection needs a reason in 'comment'"
    return None

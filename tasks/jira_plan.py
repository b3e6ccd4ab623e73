"""What a promotion event changes on its Jira ticket, as outbox operations (each idempotent).

Pure planning: the operations are written by :class:`tasks.jira_tracking.JiraTracker`.
"""

from __future__ import annotations

from typing import Any

from clearance.approvals import Outcome
from clearance.core.keys import run_prefix
from clearance.events import PromotionEvent
from clearance.render.jira_comments import gate_comment, outcome_comment, scorecard_comment, tally_comment
from clearance.settings import JiraSettings

#: The operation that must come first: find or create the run's ticket.
ISSUE_OP: dict[str, Any] = {"id": "issue", "kind": "issue"}
#: Operation kinds written again whenever they change (the tally comment is edited in place).
REPEATABLE = ("tally",)


def ops_for(event: PromotionEvent, settings: JiraSettings) -> list[dict[str, Any]]:
    """What an event changes on the ticket, as queue operations (each idempotent)."""
    ops: list[dict[str, Any]] = []

    def state(name: str) -> None:
        ops.append({"id": f"state/{name}", "kind": "transition", "state": name})

    kind = event.kind
    record = event.record
    if kind == "opened":
        if event.links.get("prefect_run"):
            ops.append({"id": "link/prefect_run", "kind": "link", "url": event.links["prefect_run"],
                        "title": f"Prefect run {event.run_id}"})
        state("gates_running")
    elif kind == "gate" and event.gate is not None:
        ops.append({"id": f"gate/{event.gate.gate_id}", "kind": "comment", "body": gate_comment(event.gate)})
    elif kind == "approval-requested" and record is not None:
        state("awaiting_approval")
        # The readiness scorecard is what an approver reads first: it comes right before the tally.
        card = scorecard_comment(event.gates or [])
        if card is not None:
            ops.append({"id": "scorecard", "kind": "comment", "body": card})
        ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
    elif kind in ("approvals-changed", "closed") and record is not None:
        ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
        if record.outcome is Outcome.APPROVED:
            state("approved")
        elif record.outcome in (Outcome.REJECTED, Outcome.TIMED_OUT):
            state("rejected")
    elif kind in ("promoted", "stopped"):
        if record is not None and record.outcome.closed:
            ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
        final = "promoted" if kind == "promoted" else (
            "rejected" if event.status in ("rejected", "timed-out") else "failed")
        ops.append({"id": f"outcome/{kind}", "kind": "comment",
                    "body": outcome_comment(kind, event.status, event.message)})
        state(final)
        ops.append({"id": "attach/report", "kind": "attach",
                    "prefix": run_prefix(event.model, event.version, event.run_id)})
    return ops


def ticket_info(event: PromotionEvent, settings: JiraSettings) -> dict[str, Any]:
    """What the ticket of ``event``'s run is created with (fixed by the first event that knows it)."""
    from clearance.render.jira_comments import description

    info: dict[str, Any] = {"run_id": event.run_id, "model": event.model, "version": event.version,
                            "artifact_digest": event.artifact_digest,
                            "summary": f"Promote {event.model} {event.version} ({event.tier} tier)",
                            "description": description(event)}
    # Where the ticket goes is fixed by the first event that knows it (the flow's carry the configs').
    project = event.notify.jira_project or settings.project
    if project:
        info["project"] = project
    if event.notify.jira_issue_type:
        info["issue_type"] = event.notify.jira_issue_type
    return info

"""What a promotion event changes on its Jira ticket, as outbox operations (each idempotent).

Pure planning: the operations are written by :class:`tasks.jira_tracking.JiraTracker`.

Lifecycle events: a ``reminder`` / ``escalated`` event is one comment per reminder (op id
``reminder/<n>`` / ``escalation/<n>``: from ``event.status``, else the newest nudge the record holds)
mentioning the people still needed (``[~accountid:…]``); an
``alert`` is a comment on the run's ticket, which it creates with the alert's summary when the run
has none yet; a request closed as ``superseded`` moves the ticket to its rejected state with a comment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clearance.approvals import Outcome
from clearance.config.schema import Principals
from clearance.core.clock import utcnow
from clearance.core.keys import run_prefix
from clearance.events import PromotionEvent
from clearance.render.jira_comments import (
    alert_comment,
    gate_comment,
    outcome_comment,
    reminder_comment,
    scorecard_comment,
    superseded_comment,
    tally_comment,
)
from clearance.render.lifecycle import SUPERSEDED, alert_ref, alert_summary, is_superseded, nudge, run_title
from clearance.settings import JiraSettings

#: The operation that must come first: find or create the run's ticket.
ISSUE_OP: dict[str, Any] = {"id": "issue", "kind": "issue"}
#: Operation kinds written again whenever they change (the tally comment is edited in place).
REPEATABLE = ("tally",)


def ops_for(event: PromotionEvent, settings: JiraSettings, principals: Principals | None = None,
            now: datetime | None = None) -> list[dict[str, Any]]:
    """What an event changes on the ticket, as queue operations (each idempotent).

    ``principals`` resolve the people a reminder mentions (without them, names are written as text).
    """
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
        elif is_superseded(record):
            ops.append({"id": "superseded", "kind": "comment", "body": superseded_comment(record)})
            state("rejected")
        elif record.outcome in (Outcome.REJECTED, Outcome.TIMED_OUT):
            state("rejected")
    elif kind in ("reminder", "escalated"):
        item = nudge(event, principals, now or utcnow())
        ops.append({"id": item.ref, "kind": "comment", "body": reminder_comment(item)})
    elif kind == "alert":
        ops.append({"id": alert_ref(event), "kind": "comment", "body": alert_comment(event)})
    elif kind in ("promoted", "stopped"):
        if record is not None and record.outcome.closed:
            ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
        final = "promoted" if kind == "promoted" else (
            "rejected" if event.status in ("rejected", "timed-out", SUPERSEDED) else "failed")
        ops.append({"id": f"outcome/{kind}", "kind": "comment",
                    "body": outcome_comment(kind, event.status, event.message, event.action)})
        state(final)
        ops.append({"id": "attach/report", "kind": "attach",
                    "prefix": run_prefix(event.model, event.version, event.run_id)})
    return ops


def ticket_info(event: PromotionEvent, settings: JiraSettings) -> dict[str, Any]:
    """What the ticket of ``event``'s run is created with (fixed by the first event that knows it)."""
    from clearance.render.jira_comments import description

    # An alert that is the run's first event (a lapse found by the sweep) opens a ticket named after it.
    summary = (alert_summary(event) if event.kind == "alert"
               else f"{run_title(event.action, event.model, event.version)} ({event.tier} tier)")
    info: dict[str, Any] = {"run_id": event.run_id, "model": event.model, "version": event.version,
                            "artifact_digest": event.artifact_digest, "summary": summary,
                            "description": description(event)}
    # Where the ticket goes is fixed by the first event that knows it (the flow's carry the configs').
    project = event.notify.jira_project or settings.project
    if project:
        info["project"] = project
    if event.notify.jira_issue_type:
        info["issue_type"] = event.notify.jira_issue_type
    return info

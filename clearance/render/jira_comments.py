"""Promotion events as Jira comments and the ticket description, built from the shared documents.

The readiness scorecard (:mod:`.scorecard`) comes first wherever it is known: the description
(when the event carries the gate results), the ``compliance_review`` gate comment, and
:func:`scorecard_comment` (its own comment, kept up to date like the tally).

Every comment ends with a ``clearance-ref`` marker line (:func:`clearance.render.jira.marker`),
so the Jira channel can find it again and never post it twice.
"""

from __future__ import annotations

from datetime import datetime

from clearance.approvals import ApprovalRecord
from clearance.core.clock import utcnow
from clearance.core.keys import run_prefix
from clearance.events import PromotionEvent
from clearance.render import jira
from clearance.render.document import Block, Bold, Bullets, Code, Heading, Inline, Link, Para
from clearance.render.gate import gate_blocks
from clearance.render.lifecycle import Nudge, alert_blocks, alert_ref, nudge_blocks, superseded_by
from clearance.render.scorecard import scorecard_blocks
from clearance.render.tally import sign_off, tally_blocks
from clearance.settings import JiraSettings
from gates.base import GateResult


def _with_marker(blocks: list[Block], ref: str) -> str:
    return jira.render(blocks) + "\n" + jira.marker(ref)


def gate_comment(result: GateResult) -> str:
    """A gate result as a readable Jira comment: headline, checks, observed values, thresholds, metrics."""
    return _with_marker(scorecard_blocks([result], level=3) + gate_blocks(result), f"gate/{result.gate_id}")


def scorecard_comment(results: list[GateResult]) -> str | None:
    """The readiness scorecard as its own comment (``None`` when no result scored readiness)."""
    blocks = scorecard_blocks(results, level=3)
    return _with_marker(blocks, "scorecard") if blocks else None


def tally_comment(record: ApprovalRecord, settings: JiraSettings, now: datetime | None = None) -> str:
    """The sign-off tally: the same document the report shows, the same numbers as Slack's message."""
    view = sign_off(record, now or utcnow())
    blocks = tally_blocks(view)
    if not view.closed:
        blocks.append(Para(["To decide, move this ticket to ", Bold(settings.approval_status), " or ",
                            Bold(settings.rejection_status), "."]))
    blocks.append(Para(["Artifact digest: ", Code(record.request.artifact_digest)]))
    return _with_marker(blocks, "tally")


_DONE = {"promotion": "Promoted", "recertification": "Re-certified", "rollback": "Rolled back"}


def outcome_comment(kind: str, status: str, message: str, action: str = "promotion") -> str:
    """How the run ended (promoted — re-certified, rolled back —, or stopped and why)."""
    title = _DONE.get(action, "Promoted") if kind == "promoted" else "Stopped"
    blocks: list[Block] = [Heading(3, [f"{title}: {status or kind}"])]
    if message:
        blocks.append(Para([message]))
    return _with_marker(blocks, f"outcome/{kind}")


def reminder_comment(item: Nudge) -> str:
    """A reminder or escalation: the people still needed mentioned, the roles missing, the deadline."""
    return _with_marker(nudge_blocks(item), item.ref)


def alert_comment(event: PromotionEvent) -> str:
    """A certification alert (failed re-certification, lapse, rollback): what happened and where to look."""
    blocks = alert_blocks(event)
    items: list[Inline] = [[f"{name.replace('_', ' ')}: ", Link(url)] for name, url in sorted(event.links.items())
                           if url]
    if items:
        blocks.append(Bullets([(item, []) for item in items]))
    return _with_marker(blocks, alert_ref(event))


def superseded_comment(record: ApprovalRecord) -> str:
    """Why the request closed without a decision: a newer version of the model was approved."""
    request = record.request
    blocks: list[Block] = [
        Heading(3, ["Superseded"]),
        Para(["The sign-off of ", Bold(f"{request.model} {request.version}"), " was closed as superseded by ",
              superseded_by(record), ": a newer version of the model was approved. Nothing is promoted by this "
              "request."]),
    ]
    return _with_marker(blocks, "superseded")


def description(event: PromotionEvent) -> str:
    """The ticket's description: the readiness scorecard first (once the event carries the gate results), then
    what is promoted (re-certified, rolled back), by whom, and where to look."""
    links: list[Inline] = [[f"{name.replace('_', ' ')}: ", Link(url)] for name, url in sorted(event.links.items())]
    if event.kind == "alert":  # an alert that opens its own ticket (a lapse found by the sweep has no run)
        digest: list[Inline] = [["Artifact digest: ", Code(event.artifact_digest)]] if event.artifact_digest else []
        facts: list[Inline] = [["Raised by: ", event.initiator], *digest, ["Run id: ", Code(event.run_id)], *links]
        return jira.render([*alert_blocks(event), Bullets([(item, []) for item in facts]),
                            Para(["Opened by clearance for a certification alert."])])
    items: list[Inline] = [["Initiator: ", event.initiator], ["Artifact digest: ", Code(event.artifact_digest)],
                           ["Prefect run id: ", Code(event.run_id)],
                           ["Evidence: ", Code(run_prefix(event.model, event.version, event.run_id))], *links]
    what: Inline
    if event.action == "recertification":
        what = ["Re-certify model ", Bold(event.model), " version ", Bold(event.version)]
    elif event.action == "rollback":
        what = ["Roll back model ", Bold(event.model), " to version ", Bold(event.version)]
    else:
        what = ["Promotion of model ", Bold(event.model), " version ", Bold(event.version)]
    return jira.render([
        *scorecard_blocks(event.gates, level=3),
        Para([*what, f" ({event.tier} risk tier)."]),
        Bullets([(item, []) for item in items]),
        Para(["Managed by clearance: status, gate comments and the report follow the pipeline."]),
    ])

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


def outcome_comment(kind: str, status: str, message: str) -> str:
    """How the promotion ended (promoted, or stopped and why)."""
    title = "Promoted" if kind == "promoted" else "Stopped"
    blocks: list[Block] = [Heading(3, [f"{title}: {status or kind}"])]
    if message:
        blocks.append(Para([message]))
    return _with_marker(blocks, f"outcome/{kind}")


def description(event: PromotionEvent) -> str:
    """The ticket's description: the readiness scorecard first (once the event carries the gate results), then
    what is promoted, by whom, and where to look."""
    items: list[Inline] = [["Initiator: ", event.initiator], ["Artifact digest: ", Code(event.artifact_digest)],
                           ["Prefect run id: ", Code(event.run_id)],
                           ["Evidence: ", Code(run_prefix(event.model, event.version, event.run_id))]]
    items += [[f"{name.replace('_', ' ')}: ", Link(url)] for name, url in sorted(event.links.items())]
    return jira.render([
        *scorecard_blocks(event.gates, level=3),
        Para(["Promotion of model ", Bold(event.model), " version ", Bold(event.version),
              f" ({event.tier} risk tier)."]),
        Bullets([(item, []) for item in items]),
        Para(["Managed by clearance: status, gate comments and the report follow the pipeline."]),
    ])

"""The report of one promotion run, as a document built from the gate and tally builders.

Rendered by :func:`clearance.render.markdown.to_markdown` (the Prefect artifact and
``report.md``) and :func:`clearance.render.html.to_html` (``report.html``, the page an auditor
opens from the evidence bundle); each renderer escapes every text from people or data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clearance.approvals import ApprovalRecord, ApprovalRequest
from clearance.core.clock import utcnow
from clearance.render.document import Block, Bold, Bullets, Code, Document, Heading, Inline, Moment, Para
from clearance.render.gate import gate_blocks, gates_overview
from clearance.render.scorecard import scorecard_blocks
from clearance.render.tally import sign_off, tally_blocks
from gates.base import GateResult


@dataclass
class Report(Document):
    """A run's report: a document with the run's outcome."""

    outcome: str = ""


def build_report(*, model: str, version: str, tier: str, run_id: str, initiator: str, artifact_digest: str,
                 results: list[GateResult], outcome: str, record: ApprovalRecord | None = None,
                 eligible: dict[str, list[str]] | None = None, request: ApprovalRequest | None = None,
                 production: dict[str, str] | None = None, note: str = "") -> Report:
    """The report of one run: headline, readiness scorecard, gate summary, each gate's checks, sign-off, where the
    model went."""
    report = Report(title=f"{model} {version}: {outcome.upper()}", outcome=outcome)
    add = report.blocks.append
    add(Heading(1, [report.title]))
    add(Bullets([(["tier: ", Bold(tier), " · run: ", Code(run_id), " · initiator: ", Code(initiator)], []),
                 (["artifact digest: ", Code(artifact_digest)], [])]))
    if note:
        add(Para([note]))
    report.blocks += scorecard_blocks(results, level=2)  # the first thing an approver reads
    add(Heading(2, ["Gates"]))
    add(gates_overview(results))
    for result in results:
        report.blocks += gate_blocks(result, level=3)
    report.blocks += sign_off_blocks(record, request, eligible or {})
    if production:
        add(Heading(2, ["Production"]))
        add(Bullets([([Code(key), " sha256 ", Code(digest)], []) for key, digest in production.items()]))
    return report


def sign_off_blocks(record: ApprovalRecord | None, request: ApprovalRequest | None,
                    eligible: dict[str, list[str]], now: datetime | None = None) -> list[Block]:
    """The tally (the same document Jira's tally comment shows), who was eligible, what was refused."""
    request = record.request if record else request
    if request is None:
        return []
    roles = ", ".join(f"{n} × {r}" for r, n in sorted(request.required_roles.items())) or "none"
    facts: list[Inline] = [[f"required: {roles}"]]
    facts += [[f"eligible {role}: {', '.join(people) or 'NOBODY — quorum impossible'}"]
              for role, people in sorted(eligible.items())]
    if record is None:  # a dry run: what would have been asked
        facts += [[f"excluded: {', '.join(request.excluded_principals) or '-'}"],
                  ["deadline: ", Moment(request.deadline), f" (then: {request.timeout_outcome.value})"]]
        return [Heading(2, ["Sign-off: not requested (dry run)"]), Bullets([(f, []) for f in facts])]
    blocks = tally_blocks(sign_off(record, now or utcnow(), eligible), level=2)
    blocks.insert(1, Bullets([(f, []) for f in facts]))
    if record.refusals:
        blocks.append(Bullets([(["refused ", Code(r.identity), f" via {r.channel.value}: {r.message}"], [])
                               for r in record.refusals]))
    return blocks

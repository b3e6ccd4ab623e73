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


@dataclass(frozen=True)
class RunFacts:
    """What an auditor asks of a run beyond its gates and sign-off: when it started, on which configs, what was
    live before, and what the model is for (each optional: recovery, writing a report late, knows less)."""

    started_at: datetime | None = None
    initiator_assurance: str = ""
    config_digest: str = ""
    previous_version: str | None = None
    previous_run: str | None = None
    owner: str = ""
    intended_use: str = ""
    kpi: str = ""


#: What the artifact digest is, and how to recompute it (tasks/candidate.py artifact_digest).
ARTIFACT_DIGEST_MEANING = ("The artifact digest is not a file's sha256: it is the sha256 of the canonical JSON "
                           "object {object key: file sha256} over every pinned artifact of the version (sorted "
                           "keys, no spaces) — what the approvers approved. Each file's own sha256 is pinned in "
                           "the manifest and listed under Production.")
HOW_TO_CHECK = ("This report is one file of the run's evidence bundle (bundle.json: the sha256 of every evidence "
                "file and the run's ledger entries); the run's closing ledger entry records the bundle's sha256. ",
                " re-checks the ledger's hash chain and signatures, every gate result and bundle against it, and "
                "every decision's proof — without trusting the bucket.")


def build_report(*, model: str, version: str, tier: str, run_id: str, initiator: str, artifact_digest: str,
                 results: list[GateResult], outcome: str, record: ApprovalRecord | None = None,
                 eligible: dict[str, list[str]] | None = None, request: ApprovalRequest | None = None,
                 production: dict[str, str] | None = None, note: str = "", facts: RunFacts | None = None,
                 written_at: datetime | None = None) -> Report:
    """The report of one run: headline, who/when/what, readiness scorecard, gate summary, each gate's checks,
    sign-off, where the model went, and how to check all of it."""
    facts = facts or RunFacts()
    report = Report(title=f"{model} {version}: {outcome.upper()}", outcome=outcome)
    add = report.blocks.append
    add(Heading(1, [report.title]))
    who = f" ({facts.initiator_assurance})" if facts.initiator_assurance else ""
    lines: list[Inline] = [["tier: ", Bold(tier), " · run: ", Code(run_id), " · initiator: ", Code(initiator), who]]
    if facts.started_at is not None:
        lines.append(["started: ", Moment(facts.started_at)])
    lines.append(["report written: ", Moment(written_at or utcnow())])
    if facts.config_digest:
        lines.append(["config digest: ", Code(facts.config_digest)])
    lines.append(["live before: ", (Code(facts.previous_version) if facts.previous_version else "nothing"),
                  *([" (run ", Code(facts.previous_run), ")"] if facts.previous_run else [])])
    lines.append(["artifact digest: ", Code(artifact_digest)])
    add(Bullets([(line, []) for line in lines]))
    if facts.owner or facts.intended_use or facts.kpi:
        about: list[Inline] = [["owner: ", Code(facts.owner)]] if facts.owner else []
        about += [["intended use: ", facts.intended_use]] if facts.intended_use else []
        about += [["KPI: ", facts.kpi]] if facts.kpi else []
        add(Heading(2, ["The model"]))
        add(Bullets([(line, []) for line in about]))
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
    add(Heading(2, ["How to check this report"]))
    add(Para([ARTIFACT_DIGEST_MEANING]))
    add(Para([HOW_TO_CHECK[0], Code(f"clearance audit verify {model}"), HOW_TO_CHECK[1]]))
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
        blocks.append(Bullets([(["refused ", Code(r.identity), f" via {r.channel.value} at ", Moment(r.at),
                                 f" ({r.reason.value}): {r.message}"], []) for r in record.refusals]))
    return blocks

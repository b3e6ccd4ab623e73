"""The readiness scorecard: the first thing an approver reads, in the report, Slack and Jira.

Built once from the ``compliance_review`` gate result's ``readiness:<factor>`` checks (the gate
writes them last, one per factor, in the order of
:data:`gates.compliance_review.config.ReadinessFactor`): each factor with its title, its status
and the evidence behind it, or what is missing. The gate writes a check's ``message`` as
``"<Factor title>: <evidence>"`` (or ``"<Factor title>: missing — <what would count>"``) and
its ``observed`` as short evidence text.

Evidence is text from the manifest (URLs, names): it is always a plain ``str`` segment, so every
renderer escapes it (:mod:`.markdown`, :mod:`.html`, :mod:`.slack`, :mod:`.jira`, :mod:`.text`).

* :func:`scorecard` — the table (factor, status with its icon, evidence), ``None`` without a scorecard;
* :func:`scorecard_blocks` — a heading and the table (report, Jira, ``clearance status``);
* :func:`scorecard_lines` — one inline line per factor, ``<icon> *Factor* — evidence`` (Slack).
"""

from __future__ import annotations

from dataclasses import dataclass

from clearance.render.document import Block, Bold, Cell, Heading, Icon, Inline, Para, Table, one_line, value_text
from gates.base import CheckResult, GateResult, Status
from gates.compliance_review.readiness import TITLES

GATE_ID = "compliance_review"
PREFIX = "readiness:"
HEADING = "Readiness scorecard"
COLUMNS = ["factor", "status", "evidence"]
#: The factors in the order an approver reads them, and their titles: the gate's own (one list).
FACTORS: tuple[str, ...] = tuple(TITLES)
#: The longest evidence text shown (the full text is in the gate's checks and evidence file).
EVIDENCE_LIMIT = 240
MISSING = "missing"  # how the gate's evidence of a factor without any starts


@dataclass(frozen=True)
class Factor:
    """One row of the scorecard."""

    factor: str  # the id after ``readiness:``
    title: str
    status: Status
    evidence: str  # user text: escaped by every renderer

    @property
    def present(self) -> bool:
        """Whether the factor has evidence (its status may still warn: e.g. data_check warned)."""
        return not self.evidence.startswith(MISSING)


def readiness_result(results: list[GateResult]) -> GateResult | None:
    """The last ``compliance_review`` result that scored readiness (``None`` when there is none)."""
    return next((r for r in reversed(results)
                 if r.gate_id == GATE_ID and any(c.id.startswith(PREFIX) for c in r.checks)), None)


def _shorten(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    text = one_line(text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def factor_of(check: CheckResult) -> Factor:
    """A readiness check as a scorecard row: title and evidence from its message, else its observed value."""
    factor = check.id[len(PREFIX):]
    title = TITLES.get(factor) or factor.replace("_", " ").strip().capitalize() or check.id
    message = one_line(check.message).strip()
    evidence = ""
    head, sep, rest = message.partition(": ")
    if sep and head.strip() and len(head) <= 60:
        title, evidence = head.strip(), rest.strip()
    elif message:
        evidence = message
    if not evidence:
        evidence = value_text(check.observed).strip() or (MISSING if check.status is not Status.PASS else "")
    if check.waiver:
        evidence += f" (waived: {one_line(check.waiver).strip()})"
    return Factor(factor=factor, title=title, status=check.status, evidence=_shorten(evidence))


def factors(results: list[GateResult]) -> list[Factor]:
    """The scorecard's rows in factor order (factors the gate added later come last, in its order)."""
    result = readiness_result(results)
    if result is None:
        return []
    rows = [factor_of(c) for c in result.checks if c.id.startswith(PREFIX)]
    order = {name: i for i, name in enumerate(FACTORS)}
    return sorted(rows, key=lambda f: order.get(f.factor, len(order)))  # stable: unknown factors keep their order


def _status(status: Status) -> Inline:
    return [Icon(status.value), " ", status.value]


def scorecard(results: list[GateResult]) -> Table | None:
    """The scorecard table (factor, status with its icon, evidence); ``None`` when no result scored readiness."""
    rows = factors(results)
    if not rows:
        return None
    cells: list[list[Cell]] = [[f.title, _status(f.status), f.evidence] for f in rows]
    return Table(list(COLUMNS), cells, status_column=1)


def summary(rows: list[Factor]) -> str:
    """``7 of 9 factors with evidence`` (as the gate's ``readiness.present`` counts: evidence that warns counts)."""
    return f"{sum(f.present for f in rows)} of {len(rows)} factors with evidence"


def scorecard_blocks(results: list[GateResult], level: int = 2) -> list[Block]:
    """A heading, a one-line summary and the table; no blocks when no result scored readiness."""
    rows = factors(results)
    table = scorecard(results)
    if table is None:
        return []
    return [Heading(level, [HEADING]), Para([summary(rows)]), table]


def scorecard_lines(results: list[GateResult]) -> list[Inline]:
    """One line per factor, ``<icon> *Factor* — evidence`` (chat, where tables do not exist)."""
    return [[Icon(f.status.value), " ", Bold(f.title), " — ", f.evidence] for f in factors(results)]

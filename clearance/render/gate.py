"""A gate result as a document, built once for every channel.

* :func:`headline` — icon, gate, version, status, mode (one line, all channels);
* :func:`gate_summary` — the headline with the checks that did not pass as sub-items (Slack);
* :func:`gate_blocks` — headline, message, checks table (observed, threshold, message, waiver),
  metrics table, evidence list (Markdown artifact, report, Jira comment).
"""

from __future__ import annotations

from clearance.render.document import (
    Block,
    Bold,
    Bullets,
    Cell,
    Code,
    Heading,
    Icon,
    Inline,
    Para,
    Table,
    value_text,
)
from gates.base import CheckResult, GateResult

#: How many problem checks a summary lists (the full table is in the evidence).
MAX_PROBLEMS = 12
CHECK_COLUMNS = ["check", "status", "observed", "threshold", "message"]


def mode(result: GateResult) -> str:
    """``blocking`` or ``advisory``."""
    return "blocking" if result.blocking else "advisory"


def headline(result: GateResult) -> Inline:
    """``<icon> Gate <id> v<version>: <STATUS> (<mode>)``."""
    return [Icon(result.status.value), " Gate ", result.gate_id, f" v{result.gate_version}: ",
            Bold(result.status.value.upper()), f" ({mode(result)})"]


def note(check: CheckResult) -> str:
    """A check's message, with the waiver's reason when one applied."""
    return check.message + (f" (waived: {check.waiver})" if check.waiver else "")


def problem_line(check: CheckResult) -> Inline:
    """A check that did not pass, on one line: id, status, observed vs threshold, message, waiver."""
    line: Inline = [Code(check.id), f" {check.status.value}"]
    if check.observed is not None:
        line += [" observed ", Code(value_text(check.observed))]
    if check.threshold is not None:
        line += [" vs ", Code(value_text(check.threshold))]
    if check.message:
        line += [" ", check.message]
    if check.waiver:
        line += [" — waived: ", check.waiver]
    return line


def gate_summary(result: GateResult, limit: int = MAX_PROBLEMS) -> Bullets:
    """The headline, with the checks a reviewer must read as sub-items."""
    return Bullets([(headline(result), [problem_line(c) for c in result.problems()[:limit]])])


def check_table(result: GateResult) -> Table:
    """One row per check; the status column is coloured in HTML."""
    rows: list[list[Cell]] = [[c.id, c.status.value, value_text(c.observed), value_text(c.threshold), note(c)]
                              for c in result.checks]
    return Table(list(CHECK_COLUMNS), rows, status_column=1)


def metrics_table(result: GateResult) -> Table:
    """One row per metric, sorted by name."""
    return Table(["metric", "value"], [[name, f"{value:g}"] for name, value in sorted(result.metrics.items())])


def evidence_list(result: GateResult) -> Bullets:
    """The files the gate produced, with their digests."""
    return Bullets([([Code(item.name), " sha256 ", Code(item.sha256)], []) for item in result.evidence])


def gate_blocks(result: GateResult, level: int = 3) -> list[Block]:
    """Everything a reviewer reads about one gate, as blocks."""
    blocks: list[Block] = [Heading(level, headline(result))]
    if result.message:
        blocks.append(Para([result.message]))
    if result.checks:
        blocks.append(check_table(result))
    if result.metrics:
        blocks.append(metrics_table(result))
    if result.evidence:
        blocks.append(evidence_list(result))
    return blocks


def gates_overview(results: list[GateResult]) -> Table:
    """One row per gate: mode, status, the checks that did not pass."""
    return Table(["gate", "mode", "status", "problems"],
                 [[r.gate_id, mode(r), r.status.value, ", ".join(c.id for c in r.problems()) or "—"]
                  for r in results], status_column=2)

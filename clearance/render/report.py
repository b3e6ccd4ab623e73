"""The human-readable report of one promotion run, as Markdown and as a self-contained HTML page.

The report is built once as a small document (headings, paragraphs, lists, tables; inline text
marked as code or bold) and rendered twice: Markdown for the Prefect artifact and ``report.md``,
HTML for ``report.html`` — the page an auditor opens from the evidence bundle. Every text that
came from people or data (comments, reasons, check messages, observed values) is escaped by the
renderer, so a comment cannot inject markup into either.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

from clearance.approvals import ApprovalRecord, ApprovalRequest, tally
from clearance.core.clock import utcnow
from gates.base import GateResult


class Code(str):
    """Inline text shown as code (ids, digests, keys)."""


class Bold(str):
    """Inline text shown in bold."""


Inline = list[str]  # plain str, Code or Bold segments


@dataclass
class Heading:
    level: int
    text: Inline


@dataclass
class Para:
    text: Inline


@dataclass
class Bullets:
    items: list[tuple[Inline, list[Inline]]]  # each item with its sub-items


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    status_column: int | None = None  # whose cells are statuses (coloured in HTML)


Block = Heading | Para | Bullets | Table


@dataclass
class Report:
    title: str
    outcome: str
    blocks: list[Block] = field(default_factory=list)


def build_report(*, model: str, version: str, tier: str, run_id: str, initiator: str, artifact_digest: str,
                 results: list[GateResult], outcome: str, record: ApprovalRecord | None = None,
                 eligible: dict[str, list[str]] | None = None, request: ApprovalRequest | None = None,
                 production: dict[str, str] | None = None, note: str = "") -> Report:
    """The report of one run: headline, gate summary, each gate's checks, sign-off, where the model went."""
    report = Report(title=f"{model} {version}: {outcome.upper()}", outcome=outcome)
    add = report.blocks.append
    add(Heading(1, [report.title]))
    add(Bullets([(["tier: ", Bold(tier), " · run: ", Code(run_id), " · initiator: ", Code(initiator)], []),
                 (["artifact digest: ", Code(artifact_digest)], [])]))
    if note:
        add(Para([note]))
    add(Heading(2, ["Gates"]))
    add(Table(["gate", "mode", "status", "problems"],
              [[r.gate_id, "blocking" if r.blocking else "advisory", r.status.value,
                ", ".join(c.id for c in r.problems()) or "—"] for r in results], status_column=2))
    for result in results:
        _gate_blocks(result, add)
    _sign_off_blocks(record, request, eligible, add)
    if production:
        add(Heading(2, ["Production"]))
        add(Bullets([([Code(key), " sha256 ", Code(digest)], []) for key, digest in production.items()]))
    return report


def _gate_blocks(result: GateResult, add) -> None:
    mode = "blocking" if result.blocking else "advisory"
    add(Heading(3, [Code(result.gate_id), f" v{result.gate_version} — ", Bold(result.status.value.upper()),
                    f" ({mode})"]))
    if result.message:
        add(Para([result.message]))
    rows = result.to_table_rows()
    add(Table(["check", "status", "observed", "threshold", "message"],
              [[r["check"], r["status"], r["observed"], r["threshold"], r["message"]] for r in rows],
              status_column=1))
    if result.metrics:
        add(Table(["metric", "value"], [[name, f"{value:g}"] for name, value in sorted(result.metrics.items())]))
    if result.evidence:
        add(Bullets([([Code(item.name), " sha256 ", Code(item.sha256)], []) for item in result.evidence]))


def _sign_off_blocks(record: ApprovalRecord | None, request: ApprovalRequest | None,
                     eligible: dict[str, list[str]] | None, add) -> None:
    request = record.request if record else request
    if request is None:
        return
    add(Heading(2, ["Sign-off"]))
    roles = ", ".join(f"{n} × {r}" for r, n in sorted(request.required_roles.items())) or "none"
    items: list[tuple[Inline, list[Inline]]] = [
        ([f"required: {roles}; excluded: {', '.join(request.excluded_principals)}"], []),
        ([f"deadline: {request.deadline.isoformat()} (then: {request.timeout_outcome.value})"], []),
    ]
    for role, people in sorted((eligible or {}).items()):
        items.append(([f"eligible {role}: {', '.join(people) or 'NOBODY — quorum impossible'}"], []))
    if record is not None:
        subs: list[Inline] = [
            [f"{d.vote.value} by ", Code(d.principal), f" via {d.channel.value} at {d.at.isoformat()}"]
            + ([f": {d.comment}"] if d.comment else []) for d in record.decisions]
        subs += [["refused ", Code(r.identity), f" via {r.channel.value}: {r.message}"] for r in record.refusals]
        items.append((["outcome: ", Bold(record.outcome.value)]
                      + ([f" by {', '.join(record.closed_by)}"] if record.closed_by else []), subs))
        if record.outcome.value == "pending":
            items.append(([f"still needed: {tally(record, utcnow()).missing}"], []))
    add(Bullets(items))


# ----------------------------------------------------------------------------- Markdown


def _inline(parts: Inline, *, escape: Callable[[str], str], code: str, bold: str) -> str:
    """Inline segments joined, each escaped, code and bold wrapped by the ``{}`` templates."""
    out = []
    for part in parts:
        text = escape(str(part))
        out.append(code.format(text) if isinstance(part, Code) else bold.format(text) if isinstance(part, Bold)
                   else text)
    return "".join(out)


def _md_inline(parts: Inline) -> str:
    return _inline([Code(p.replace("`", "'")) if isinstance(p, Code) else p for p in parts],
                   escape=str, code="`{}`", bold="**{}**")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    """The report as Markdown (a Prefect artifact and ``report.md``)."""
    chunks: list[str] = []
    for block in report.blocks:
        if isinstance(block, Heading):
            chunks.append("#" * block.level + " " + _md_inline(block.text))
        elif isinstance(block, Para):
            chunks.append(_md_inline(block.text))
        elif isinstance(block, Bullets):
            lines = []
            for text, subs in block.items:
                lines.append("- " + _md_inline(text))
                lines += ["  - " + _md_inline(sub) for sub in subs]
            chunks.append("\n".join(lines))
        else:
            lines = ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"


# ----------------------------------------------------------------------------- HTML

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2rem}h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td{word-break:break-word}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;background:#f6f8fa;padding:.05rem .25rem;border-radius:4px}
.s{font-weight:600;border-radius:4px;padding:.05rem .4rem}
.s-pass{background:#dafbe1;color:#116329}.s-warn{background:#fff8c5;color:#7d4e00}
.s-fail,.s-error{background:#ffebe9;color:#a40e26}.s-waived,.s-skipped{background:#ddf4ff;color:#0550ae}
footer{margin-top:2rem;color:#59636e;font-size:.85rem}
"""
_STATUSES = {"pass", "warn", "fail", "error", "waived", "skipped"}


def _html_inline(parts: Inline) -> str:
    return _inline(parts, escape=html.escape, code="<code>{}</code>", bold="<strong>{}</strong>")


def _html_cell(text: str, status: bool) -> str:
    if status and text in _STATUSES:
        return f'<td><span class="s s-{text}">{text}</span></td>'
    return f"<td>{html.escape(text)}</td>"


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline style, no scripts, every text escaped)."""
    body: list[str] = []
    for block in report.blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_html_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_html_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = []
            for text, subs in block.items:
                inner = "".join(f"<li>{_html_inline(sub)}</li>" for sub in subs)
                items.append(f"<li>{_html_inline(text)}" + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
            body.append("<ul>" + "".join(items) + "</ul>")
        else:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(_html_cell(c, i == block.status_column) for i, c in enumerate(row))
                           + "</tr>" for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body)
            + "\n<footer>clearance evidence report · the digests above are those the ledger and "
              "<code>bundle.json</code> hold · check them with <code>clearance audit verify MODEL</code></footer>"
            + "\n</body></html>\n")

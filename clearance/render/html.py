"""Documents as HTML: the self-contained ``report.html`` an auditor opens from the evidence bundle.

Every user text goes through :func:`html.escape` (``& < > " '``), so it is shown, never parsed.
The page has an inline style only and a Content-Security-Policy meta that forbids loading or
running anything (``default-src 'none'``); links are written only for http(s) and mailto URLs.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from clearance.render.document import (
    Block,
    Bullets,
    Cell,
    Document,
    Heading,
    Icon,
    Inline,
    InlineStyle,
    Link,
    Para,
    cell_inline,
    icon_character,
    iso_moment,
    safe_url,
)

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;
color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2rem}h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td{word-break:break-word}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;
background:#f6f8fa;padding:.05rem .25rem;border-radius:4px}
.s{font-weight:600;border-radius:4px;padding:.05rem .4rem}
.s-pass{background:#dafbe1;color:#116329}.s-warn{background:#fff8c5;color:#7d4e00}
.s-fail,.s-error{background:#ffebe9;color:#a40e26}.s-waived,.s-skipped{background:#ddf4ff;color:#0550ae}
footer{margin-top:2rem;color:#59636e;font-size:.85rem}
"""
_STATUSES = {"pass", "warn", "fail", "error", "waived", "skipped"}
_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def escape(text: str) -> str:
    """User text as HTML text (and safe inside a quoted attribute)."""
    return html.escape(text, quote=True)


def _link(item: Link) -> str:
    url = safe_url(item.url)
    label = escape(item.label or item.url)
    return f'<a href="{escape(url)}" rel="noopener noreferrer">{label}</a>' if url else label


_INLINE = InlineStyle(text=lambda t: escape(t), code=lambda t: f"<code>{escape(t)}</code>",
                     bold=lambda t: f"<strong>{escape(t)}</strong>", link=_link,
                     moment=lambda m: f'<time datetime="{escape(m.at.isoformat())}">{escape(iso_moment(m))}</time>')


def inline(parts: Inline) -> str:
    """Inline segments as HTML, each escaped."""
    return _INLINE.render(parts)


def cell(value: Cell, status: bool = False) -> str:
    """One table cell; a status column's known statuses are coloured."""
    if status and isinstance(value, str) and value in _STATUSES:
        return f'<td><span class="s s-{value}">{value}</span></td>'
    if (status and isinstance(value, list) and len(value) == 3 and isinstance(value[0], Icon)
            and value[1] == " " and value[2] in _STATUSES):  # a status with its icon (the readiness scorecard)
        name = value[2]
        return f'<td>{escape(icon_character(value[0]))} <span class="s s-{name}">{name}</span></td>'
    return f"<td>{inline(cell_inline(value))}</td>"


def block(item: Block) -> str:
    """One block as HTML."""
    if isinstance(item, Heading):
        level = max(1, min(item.level, 6))
        return f"<h{level}>{inline(item.text)}</h{level}>"
    if isinstance(item, Para):
        return f"<p>{inline(item.text)}</p>"
    if isinstance(item, Bullets):
        items = []
        for text, subs in item.items:
            inner = "".join(f"<li>{inline(sub)}</li>" for sub in subs)
            items.append(f"<li>{inline(text)}" + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
        return "<ul>" + "".join(items) + "</ul>"
    head = "".join(f"<th>{escape(h)}</th>" for h in item.header)
    rows = "".join("<tr>" + "".join(cell(c, i == item.status_column) for i, c in enumerate(row)) + "</tr>"
                   for row in item.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render(blocks: Iterable[Block]) -> str:
    """Blocks as an HTML fragment, one block a line."""
    return "\n".join(block(b) for b in blocks)


def to_html(document: Document) -> str:
    """A document as one self-contained HTML page (inline style, no scripts, every text escaped)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
            f"<title>{escape(document.title)}</title><style>{_STYLE}</style></head><body>\n"
            + render(document.blocks)
            + "\n<footer>clearance evidence report · the digests above are those the ledger and "
              "<code>bundle.json</code> hold · check them with <code>clearance audit verify MODEL</code></footer>"
            + "\n</body></html>\n")

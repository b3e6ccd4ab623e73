"""Documents as Markdown (CommonMark + GFM tables): Prefect Markdown artifacts and ``report.md``.

User text is escaped so it stays text wherever Markdown is rendered: ``\\ ` * [ ] < > # | ~`` are
backslash-escaped, ``&`` becomes ``&amp;`` (no entities, no raw HTML), ``_`` outside words is
escaped, line breaks become spaces, and a block never starts with user text that would open a
list, a quote or a thematic break. Code spans use a fence longer than any backtick run inside,
and inside table cells every ``|`` is escaped (GFM splits cells before it parses code).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from clearance.render.document import (
    Block,
    Bullets,
    Cell,
    Document,
    Heading,
    Inline,
    InlineStyle,
    Link,
    Para,
    cell_inline,
    one_line,
    safe_url,
)

_ALWAYS = frozenset("\\`*[]<>#|~")
_BLOCK_START = re.compile(r"^([-+=]|\d{1,9}(?=[.)]))")


def _inside_word(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()


def escape(text: str) -> str:
    """User text as Markdown that shows exactly this text (on one line)."""
    text = one_line(text)
    out = []
    for i, char in enumerate(text):
        if char == "&":
            out.append("&amp;")
        elif char in _ALWAYS or (char == "_" and not _inside_word(text, i)):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def code(text: str, *, in_table: bool = False) -> str:
    """A code span that no backtick in ``text`` can close early."""
    text = one_line(text)
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def link(item: Link) -> str:
    """``[label](url)``; a URL that is not http(s)/mailto is shown as text, not linked."""
    label = escape(item.label or item.url)
    url = safe_url(item.url)
    if url is None:
        return label if not item.label else f"{label} ({escape(item.url)})"
    for char, encoded in (("\\", "%5C"), ("<", "%3C"), (">", "%3E"), ("(", "%28"), (")", "%29"), ("|", "%7C")):
        url = url.replace(char, encoded)
    return f"[{label}]({url})"


def _bold(text: str) -> str:
    return f"**{escape(text.strip())}**" if text.strip() else ""


_INLINE = InlineStyle(text=lambda t: escape(t), code=lambda t: code(t), bold=_bold, link=lambda item: link(item))
_TABLE_INLINE = InlineStyle(text=lambda t: escape(t), code=lambda t: code(t, in_table=True), bold=_bold,
                           link=lambda item: link(item))


def inline(parts: Inline, *, in_table: bool = False) -> str:
    """Inline segments as Markdown, each escaped for its kind."""
    return (_TABLE_INLINE if in_table else _INLINE).render(parts)


def _line(parts: Inline) -> str:
    """Inline text at the start of a block: leading spaces dropped, list/quote/rule markers escaped."""
    return _BLOCK_START.sub(lambda m: "\\" + m[1] if not m[1][0].isdigit() else m[1] + "\\", inline(parts).lstrip())


def cell(value: Cell) -> str:
    """One GFM table cell."""
    return inline(cell_inline(value), in_table=True)


def block(item: Block) -> str:
    """One block as Markdown."""
    if isinstance(item, Heading):
        return "#" * max(1, min(item.level, 6)) + " " + _line(item.text)
    if isinstance(item, Para):
        return _line(item.text)
    if isinstance(item, Bullets):
        lines = []
        for text, subs in item.items:
            lines.append("- " + _line(text))
            lines += ["  - " + _line(sub) for sub in subs]
        return "\n".join(lines)
    lines = ["| " + " | ".join(escape(h) for h in item.header) + " |", "|" + "---|" * len(item.header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in item.rows]
    return "\n".join(lines)


def render(blocks: Iterable[Block]) -> str:
    """Blocks as one Markdown text, separated by blank lines."""
    return "\n\n".join(block(b) for b in blocks) + "\n"


def to_markdown(document: Document) -> str:
    """A document as Markdown (a Prefect artifact, ``report.md``)."""
    return render(document.blocks)

"""Documents as Jira wiki markup (comments and descriptions), and the ``clearance-ref`` marker.

Escaping of user text, following Jira's backslash escapes (the renderer's escapable set is
``- # * _ + ? ^ ~ | % { } [ ] ( ) ! @``): ``| { } [ ] ! #`` are always escaped (no table cell,
macro such as ``{code}``, link ``[x|https://…]``, mention ``[~user]``, image ``!x.png!`` or
numbered list), ``* _ + - ^ ~ ?`` are escaped where they could open or close an effect (not
inside a word, not standing alone), icon tokens like ``(/)`` lose their meaning, a backslash
becomes ``&#92;`` (it can neither escape our delimiters nor make a ``\\\\`` line break), line
breaks become spaces, and a block never starts with ``h1.`` … ``h6.``, ``bq.``, a list or a rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from clearance.render.document import (
    Block,
    Bold,
    Bullets,
    Cell,
    Code,
    Heading,
    Inline,
    InlineStyle,
    Link,
    Mention,
    Para,
    cell_inline,
    one_line,
    safe_url,
)

ICONS = {"pass": "(/)", "done": "(/)", "approved": "(/)", "promoted": "(/)", "warn": "(!)", "fail": "(x)",
         "rejected": "(x)", "error": "(x)", "stopped": "(x)", "skipped": "(i)", "waived": "(i)", "pending": "(?)",
         "timed_out": "(x)", "superseded": "(i)", "reminder": "(!)", "escalated": "(!)", "alert": "(x)"}
#: The shape of an account id written into a ``[~accountid:…]`` mention (Cloud ids: ``557058:f581…``, hex).
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
_ALWAYS = frozenset("|{}[]!#")
_EFFECTS = frozenset("*_+-^~?")
_ICON_TOKEN = re.compile(r"\((?=(?:/|x|i|y|n|on|off)\))", re.IGNORECASE)
_BLOCK_START = re.compile(r"^(?:(h[1-6]|bq|fn\d*)\.|([-*]))")
CELL_LIMIT = 500


def _opens_or_closes(text: str, i: int) -> bool:
    before = text[i - 1] if i else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return not ((before.isalnum() and after.isalnum()) or (before.isspace() and after.isspace()))


def escape(text: str) -> str:
    """User text as wiki markup that shows this text: no link, macro, image, table or effect survives."""
    text = one_line(text)
    out = []
    for i, char in enumerate(text):
        if char == "\\":
            out.append("&#92;")
        elif char in _ALWAYS or (char in _EFFECTS and _opens_or_closes(text, i)):
            out.append("\\" + char)
        else:
            out.append(char)
    return _ICON_TOKEN.sub(r"\\(", "".join(out))


def link(item: Link) -> str:
    """``[label|url]`` for an http(s)/mailto URL; anything else is shown as text."""
    url = safe_url(item.url)
    if url is None:
        return escape(item.label or item.url)
    for char, encoded in (("|", "%7C"), ("[", "%5B"), ("]", "%5D"), ("\\", "%5C")):
        url = url.replace(char, encoded)
    return f"[{escape(item.label)}|{url}]" if item.label else f"[{url}]"


def mention(item: Mention) -> str:
    """``[~accountid:…]`` for an account id of a safe shape; else the label as text."""
    if item.jira_account_id and _ACCOUNT_ID.fullmatch(item.jira_account_id):
        return f"[~accountid:{item.jira_account_id}]"
    return escape(item.label)


_INLINE = InlineStyle(
    text=lambda t: escape(t),
    code=lambda t: f"{{{{{escape(t)}}}}}" if t else "",
    bold=lambda t: f"*{escape(t.strip())}*" if t.strip() else "",
    link=lambda item: link(item),
    icon=lambda item: ICONS.get(item.name, ""),  # Jira's own icon tokens, not the shared characters
    mention=mention,
)


def inline(parts: Inline) -> str:
    """Inline segments as wiki markup, each escaped."""
    return _INLINE.render(parts)


def _line(parts: Inline) -> str:
    """Inline text starting a line: no heading, quote, footnote, list or rule from user text."""
    text = inline(parts).lstrip()
    return _BLOCK_START.sub(lambda m: f"{m[1]}&#46;" if m[1] else "\\" + m[2], text, count=1)


def wiki_cell(value: Any) -> str:
    """A value as one table cell (escaped, one line, at most 500 characters of the value)."""
    if value is None or value == "":
        return " "
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return escape(one_line(text)[:CELL_LIMIT]) or " "


def cell(value: Cell) -> str:
    if isinstance(value, str) and not isinstance(value, Code | Bold):
        return wiki_cell(value)
    return inline(cell_inline(value)) or " "


def block(item: Block) -> str:
    """One block as wiki markup."""
    if isinstance(item, Heading):
        return f"h{max(1, min(item.level, 6))}. {inline(item.text)}"
    if isinstance(item, Para):
        return _line(item.text)
    if isinstance(item, Bullets):
        lines = []
        for text, subs in item.items:
            lines.append("* " + inline(text))
            lines += ["** " + inline(sub) for sub in subs]
        return "\n".join(lines)
    lines = ["||" + "||".join(escape(h) for h in item.header) + "||"]
    lines += ["|" + "|".join(cell(c) for c in row) + "|" for row in item.rows]
    return "\n".join(lines)


def render(blocks: Iterable[Block]) -> str:
    """Blocks as wiki markup, one block after the other."""
    return "\n".join(block(b) for b in blocks)


def marker(ref: str) -> str:
    """The line that identifies a clearance comment (so it is never posted twice). Its format is fixed."""
    return f"{{{{clearance-ref: {ref}}}}}"

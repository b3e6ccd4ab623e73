"""Documents as Slack mrkdwn, and the Block Kit pieces (sections, fields, context) with Slack's limits.

Escaping of user text, following https://api.slack.com/reference/surfaces/formatting#escaping:
``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``, ``&gt;``, so no ``<!channel>``, ``<@U123>``,
``<!subteam^…>`` or ``<https://…|label>`` can be injected. Slack has no escape for formatting,
so ``*``, ``_``, ``~`` that could open or close bold/italic/strike (not inside a word, not
standing alone) and every backtick are replaced by look-alikes (∗ ＿ ∼ ˋ). Line breaks in user
text become spaces, and text starting with ``>`` gets a zero-width space first, so user text
never starts a quote. ``plain_text`` objects are not parsed by Slack and are only cut to length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from clearance.render.document import (
    Block,
    Bold,
    Bullets,
    Code,
    Heading,
    Icon,
    Inline,
    Link,
    Mention,
    Moment,
    Para,
    cell_inline,
    one_line,
    safe_url,
)

# Slack's limits (https://api.slack.com/reference/block-kit/blocks).
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
CONTEXT_TEXT_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
MODAL_TITLE_LIMIT = 24
MAX_BLOCKS = 50
FALLBACK_TEXT_LIMIT = 3000  # the top-level ``text`` (Slack truncates beyond 40 000; notifications far sooner)

EMOJI = {
    "pass": ":white_check_mark:", "done": ":white_check_mark:", "approved": ":white_check_mark:",
    "warn": ":warning:", "fail": ":x:", "rejected": ":x:", "error": ":exclamation:", "skipped": ":white_circle:",
    "waived": ":large_yellow_circle:", "pending": ":hourglass_flowing_sand:", "timed_out": ":hourglass:",
    "promoted": ":rocket:", "stopped": ":no_entry:", "superseded": ":fast_forward:", "reminder": ":bell:",
    "escalated": ":loudspeaker:", "alert": ":rotating_light:",
}
#: The shape of a Slack user id (``U…`` / ``W…``); only such an id is ever written as ``<@…>``.
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_LOOKALIKE = {"*": "\u2217", "_": "\uff3f", "~": "\u223c", "`": "\u02cb"}
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _entities(text: str) -> str:
    return "".join(_ENTITIES.get(char, char) for char in text)


def _formats(text: str, i: int) -> bool:
    """Whether the formatting character at ``i`` could open or close bold/italic/strike."""
    before = text[i - 1] if i else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    inside_word = before.isalnum() and after.isalnum()
    alone = before.isspace() and after.isspace()
    return not (inside_word or alone)


def escape(text: str) -> str:
    """User text as mrkdwn that shows this text: no mention, link, or formatting survives."""
    text = one_line(text)
    out = []
    for i, char in enumerate(text):
        if char == "`" or (char in _LOOKALIKE and _formats(text, i)):
            out.append(_LOOKALIKE[char])
        else:
            out.append(_ENTITIES.get(char, char))
    escaped = "".join(out)
    # Slack reads ``&gt;`` at a line start as a quote; user text may start a line (a field's value).
    return "\u200b" + escaped if escaped.startswith("&gt;") else escaped


def code(text: str) -> str:
    """A code span (nothing inside is formatted; a backtick cannot close it early)."""
    text = one_line(text)
    return f"`{_entities(text).replace('`', _LOOKALIKE['`'])}`" if text else ""


def slack_date(moment: datetime) -> str:
    """A date Slack shows in the reader's time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def link(item: Link) -> str:
    """``<url|label>`` for an http(s)/mailto URL; anything else is shown as text."""
    url = safe_url(item.url)
    label = escape(item.label or item.url)
    if url is None:
        return label
    url = _entities(url).replace("|", "%7C")
    return f"<{url}|{label}>"


def mention(item: Mention) -> str:
    """``<@U…>`` for a Slack user id of the right shape; else the label as text (no ``@`` that could ping)."""
    if item.slack_id and _USER_ID.fullmatch(item.slack_id):
        return f"<@{item.slack_id}>"
    return escape(item.label)


def mrkdwn(parts: Inline | str) -> str:
    """Inline segments as mrkdwn, each escaped for its kind."""
    if isinstance(parts, str):
        parts = [parts]
    out = []
    for part in parts:
        if isinstance(part, Code):
            out.append(code(part))
        elif isinstance(part, Bold):
            out.append(f"*{escape(part.strip())}*" if part.strip() else "")
        elif isinstance(part, Link):
            out.append(link(part))
        elif isinstance(part, Icon):
            out.append(EMOJI.get(part.name, ""))
        elif isinstance(part, Moment):
            out.append(slack_date(part.at))
        elif isinstance(part, Mention):
            out.append(mention(part))
        else:
            out.append(escape(part))
    return "".join(out)


def lines(blocks: Iterable[Block]) -> list[str]:
    """Blocks as mrkdwn lines: a bullet item is a line, its sub-items are indented ``•`` lines."""
    out: list[str] = []
    for item in blocks:
        if isinstance(item, Heading | Para):
            out.append(mrkdwn(item.text))
        elif isinstance(item, Bullets):
            for text, subs in item.items:
                out.append(mrkdwn(text))
                out += ["    • " + mrkdwn(sub) for sub in subs]
        else:
            out += ["• " + " · ".join(mrkdwn(cell_inline(c)) for c in row) for row in item.rows]
    return out


# --------------------------------------------------------------------------- Block Kit


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, never ending inside an entity or a ``<…>`` link."""
    if len(text) <= limit:
        return text
    head = re.sub(r"&[#\w]*$", "", text[: limit - 1])
    head = re.sub(r"<[^>]*$", "", head)
    return head + "…"


def join_lines(items: list[str], limit: int = SECTION_TEXT_LIMIT) -> str:
    """Lines joined up to ``limit``; whole lines that no longer fit are counted, not cut in half."""
    out: list[str] = []
    size = 0
    for i, line in enumerate(items):
        line = cut(line, limit - 40)
        if size + len(line) + 1 > limit - 40 and out:
            out.append(f"… and {len(items) - i} more")
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def plain(text: str, limit: int = HEADER_TEXT_LIMIT) -> dict[str, Any]:
    """A ``plain_text`` object (Slack does not parse it)."""
    return {"type": "plain_text", "text": cut(text, limit) or " ", "emoji": True}


def text_object(text: str, limit: int = SECTION_TEXT_LIMIT) -> dict[str, Any]:
    """A ``mrkdwn`` text object; ``text`` is already escaped mrkdwn."""
    return {"type": "mrkdwn", "text": cut(text, limit) or " "}


def section(*items: str) -> dict[str, Any]:
    """A section whose text is the given mrkdwn lines."""
    return {"type": "section", "text": text_object(join_lines(list(items)))}


def fields(pairs: list[tuple[str, Inline | str]]) -> dict[str, Any]:
    """A section of labelled fields: ``*label*`` over the value (user text in values is escaped)."""
    return {"type": "section", "fields": [text_object(f"{mrkdwn([Bold(label)])}\n{mrkdwn(value)}", FIELD_TEXT_LIMIT)
                                          for label, value in pairs[:MAX_FIELDS]]}


def context(*items: str) -> dict[str, Any]:
    """A context block of mrkdwn elements (empty ones dropped)."""
    return {"type": "context",
            "elements": [text_object(p, CONTEXT_TEXT_LIMIT) for p in items if p][:MAX_CONTEXT_ELEMENTS]}


def fallback(text: str) -> str:
    """The top-level ``text`` of a message (notifications, screen readers): user text escaped."""
    return cut(escape(text), FALLBACK_TEXT_LIMIT)

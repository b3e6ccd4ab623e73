"""The document model every message and report is built in, once, before any target renders it.

Blocks: :class:`Heading`, :class:`Para`, :class:`Bullets` (items with sub-items) and
:class:`Table` (with an optional status column). Inline text is a list of segments:

* a plain ``str`` is ALWAYS text from people or data (names, comments, check messages, observed
  values) and every renderer escapes it for its target;
* :class:`Code`, :class:`Bold` are such text shown as code or in bold (escaped as well);
* :class:`Link`, :class:`Icon`, :class:`Moment` are structure the builders add, which each
  renderer writes in its own syntax (a link is only ever written for an http(s) or mailto URL).

Builders (:mod:`.gate`, :mod:`.tally`, :mod:`.report`) make documents; renderers
(:mod:`.markdown`, :mod:`.html`, :mod:`.slack`, :mod:`.jira`) turn them into text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Code(str):
    """Inline text shown as code (ids, digests, keys)."""


class Bold(str):
    """Inline text shown in bold."""


@dataclass(frozen=True)
class Link:
    """A link; ``label`` defaults to the URL. Unsafe schemes are shown as text, never linked."""

    url: str
    label: str = ""


@dataclass(frozen=True)
class Icon:
    """A status shown as an icon (Slack emoji, Jira icon, a character elsewhere); see :data:`ICONS`."""

    name: str


@dataclass(frozen=True)
class Moment:
    """A point in time (Slack shows it in the reader's time zone; elsewhere ISO 8601)."""

    at: datetime


Segment = str | Link | Icon | Moment
Inline = list[Segment]
Cell = str | Inline


@dataclass
class Heading:
    """A heading, level 1 (title) to 6."""

    level: int
    text: Inline


@dataclass
class Para:
    """One paragraph (always one line: user text cannot break it)."""

    text: Inline


@dataclass
class Bullets:
    """A bullet list; each item may have sub-items (Slack shows items as lines)."""

    items: list[tuple[Inline, list[Inline]]]  # each item with its sub-items


@dataclass
class Table:
    """A table with a header of our own and cells of user text (or inline segments)."""

    header: list[str]
    rows: list[list[Cell]]
    status_column: int | None = None  # whose cells are statuses (coloured in HTML)


Block = Heading | Para | Bullets | Table


@dataclass
class Document:
    """A titled list of blocks (a report, a comment, a message body)."""

    title: str = ""
    blocks: list[Block] = field(default_factory=list)


#: Icon names the builders use, with the character shown where no richer icon exists.
ICONS = {
    "pass": "✅", "done": "✅", "approved": "✅", "warn": "⚠️", "fail": "❌", "rejected": "❌",
    "error": "❗", "skipped": "⚪", "waived": "🟡", "pending": "⏳", "timed_out": "⌛",
    "promoted": "🚀", "stopped": "⛔",
}

_SAFE_SCHEME = re.compile(r"^(https?://|mailto:)[^\s]+$", re.IGNORECASE)
_NEWLINES = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def safe_url(url: str) -> str | None:
    """``url`` if it may be written as a link target (http(s) or mailto, no whitespace), else ``None``."""
    url = url.strip()
    return url if _SAFE_SCHEME.match(url) else None


def one_line(text: str) -> str:
    """Text with every line break turned into a space: user text never starts a line of markup."""
    return _NEWLINES.sub(" ", text)


def value_text(value: Any) -> str:
    """An observed value or threshold as one line of text (JSON for non-strings, empty for None)."""
    if value is None:
        return ""
    return one_line(value if isinstance(value, str) else json.dumps(value, default=str))


def plain_text(parts: Inline | str) -> str:
    """Inline segments as unformatted text (table artifacts, fallbacks, terminals)."""
    if isinstance(parts, str):
        return one_line(parts)
    out = []
    for part in parts:
        if isinstance(part, Link):
            out.append(part.label or part.url)
        elif isinstance(part, Icon):
            out.append(ICONS.get(part.name, ""))
        elif isinstance(part, Moment):
            out.append(part.at.isoformat())
        else:
            out.append(one_line(part))
    return "".join(out)


def cell_inline(cell: Cell) -> Inline:
    """A table cell as inline segments."""
    return [cell] if isinstance(cell, str) else cell

"""The document model every message and report is built in, once, before any target renders it.

Blocks: :class:`Heading`, :class:`Para`, :class:`Bullets` (items with sub-items) and
:class:`Table` (with an optional status column). Inline text is a list of segments:

* a plain ``str`` is ALWAYS text from people or data (names, comments, check messages, observed
  values) and every renderer escapes it for its target;
* :class:`Code`, :class:`Bold` are such text shown as code or in bold (escaped as well);
* :class:`Link`, :class:`Icon`, :class:`Moment` are structure the builders add, which each
  renderer writes in its own syntax (a link is only ever written for an http(s) or mailto URL);
* :class:`Mention` is a person the builders want to notify: Slack and Jira write their own mention
  (only for an id of the expected shape), every other target shows the escaped name.

Builders (:mod:`.gate`, :mod:`.tally`, :mod:`.report`) make documents; renderers
(:mod:`.markdown`, :mod:`.html`, :mod:`.slack`, :mod:`.jira`) turn them into text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    """A point in time (Slack shows it in the reader's time zone; elsewhere UTC to the second)."""

    at: datetime


@dataclass(frozen=True)
class Mention:
    """A person to notify: a channel mentions its own id of them, else the (escaped) label is shown.

    The ids come from ``principals.yaml`` (``slack_id``, ``jira_account_id``); a renderer writes a
    mention only for an id of the shape it expects, so a hostile id can never become markup.
    """

    label: str
    slack_id: str | None = None
    jira_account_id: str | None = None


Segment = str | Link | Icon | Moment | Mention
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
    "promoted": "🚀", "stopped": "⛔", "superseded": "⏭️", "reminder": "🔔", "escalated": "📣", "alert": "🚨",
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


def icon_character(item: Icon) -> str:
    """The character of an icon (targets without richer icons)."""
    return ICONS.get(item.name, "")


def iso_moment(item: Moment) -> str:
    """A moment as a person reads it, in UTC to the second (``2026-11-25 12:00:00 UTC``), for targets that
    cannot localise time; the microseconds and offsets are in the stored JSON, where a machine reads them."""
    at = item.at if item.at.tzinfo is not None else item.at.replace(tzinfo=UTC)
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class InlineStyle:
    """How one target writes each kind of inline segment; every function escapes what it is given.

    The walk over segments is the same for every target (:meth:`render`); only these functions differ.
    """

    text: Callable[[str], str]
    code: Callable[[str], str]
    bold: Callable[[str], str]
    link: Callable[[Link], str]
    icon: Callable[[Icon], str] = icon_character
    moment: Callable[[Moment], str] = iso_moment
    #: How a mention is written; ``None``: the label, as text (targets without mentions).
    mention: Callable[[Mention], str] | None = None

    def render(self, parts: Inline) -> str:
        """The segments in this target's syntax."""
        out = []
        for part in parts:
            if isinstance(part, Code):
                out.append(self.code(part))
            elif isinstance(part, Bold):
                out.append(self.bold(part))
            elif isinstance(part, Link):
                out.append(self.link(part))
            elif isinstance(part, Icon):
                out.append(self.icon(part))
            elif isinstance(part, Moment):
                out.append(self.moment(part))
            elif isinstance(part, Mention):
                out.append(self.mention(part) if self.mention is not None else self.text(part.label))
            else:
                out.append(self.text(part))
        return "".join(out)


PLAIN = InlineStyle(text=lambda t: one_line(t), code=lambda t: one_line(t), bold=lambda t: one_line(t),
                    link=lambda item: one_line(item.label or item.url))


def plain_text(parts: Inline | str) -> str:
    """Inline segments as unformatted text (table artifacts, fallbacks, terminals)."""
    return one_line(parts) if isinstance(parts, str) else PLAIN.render(parts)


def cell_inline(cell: Cell) -> Inline:
    """A table cell as inline segments."""
    return [cell] if isinstance(cell, str) else cell

"""Documents as plain text for a terminal (``clearance status``).

No markup at all: the CLI prints the result with Rich's markup off, so ``[link=…]`` or
``[red]`` in user text stays text. Escaping here means removing control characters
(ESC and the rest of C0/C1, so user text cannot move the cursor, recolour the terminal or
write an OSC 8 hyperlink) and turning line breaks into spaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from clearance.render.document import Block, Bullets, Heading, Inline, Para, cell_inline, plain_text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """User text safe to print on a terminal: one line, no control characters."""
    return _CONTROL.sub("", plain_text(text.replace("\t", " ")))


def inline(parts: Inline) -> str:
    return _CONTROL.sub("", plain_text(parts))


def block(item: Block) -> str:
    """One block as plain lines; a table as aligned columns."""
    if isinstance(item, Heading | Para):
        return inline(item.text)
    if isinstance(item, Bullets):
        lines = []
        for text, subs in item.items:
            lines.append("- " + inline(text))
            lines += ["    - " + inline(sub) for sub in subs]
        return "\n".join(lines)
    rows = [list(item.header)] + [[inline(cell_inline(c)) for c in row] for row in item.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(item.header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def render(blocks: Iterable[Block]) -> str:
    """Blocks as plain text, separated by blank lines."""
    return "\n\n".join(block(b) for b in blocks)

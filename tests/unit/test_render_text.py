"""The terminal renderer (``clearance status``): plain text, no control characters, no Rich markup."""

from __future__ import annotations

from rich.console import Console

from clearance.approvals import ApprovalRecord
from clearance.render import text
from clearance.render.document import Para
from clearance.render.gate import gates_overview
from clearance.render.report import sign_off_blocks
from gates.base import CheckResult, GateResult, Status
from tests.unit.test_render_tally import NOW, decide, request

HOSTILE = "[link=https://evil.example]Approve[/link] [red]x[/red] \x1b]8;;https://evil.example\x07y\x1b[2J\nz"


def test_control_characters_and_line_breaks_are_gone() -> None:
    expected = "[link=https://evil.example]Approve[/link] [red]x[/red] ]8;;https://evil.exampley[2J z"
    assert text.escape(HOSTILE) == expected


def test_status_output_shows_markup_as_text() -> None:
    record = decide(ApprovalRecord(request=request()), HOSTILE, ["business"])
    gate = GateResult.from_checks("data_check", "1", [CheckResult(id=HOSTILE, status=Status.FAIL)])
    out = text.render([Para(["run r1"]), gates_overview([gate]), *sign_off_blocks(record, None, {}, now=NOW)])
    assert "\x1b" not in out and "\x07" not in out
    console = Console(record=True, width=400, color_system=None)
    console.print(out, markup=False, highlight=False)
    printed = console.export_text()
    assert "[link=https://evil.example]Approve[/link] [red]x[/red]" in printed
    assert "Sign-off: pending" in printed and "data_check" in printed and "fail" in printed
    assert "business  1       " in printed  # the role table, aligned

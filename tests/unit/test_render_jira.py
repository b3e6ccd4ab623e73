"""The Jira wiki renderer: escaping, block starts, tables, links, and the fixed marker line."""

from __future__ import annotations

import re

import pytest

from clearance.render import jira
from clearance.render.document import Bold, Bullets, Code, Heading, Link, Para, Table
from clearance.render.jira_comments import gate_comment, outcome_comment
from gates.base import CheckResult, GateResult, Status


@pytest.mark.parametrize(("text", "escaped"), [
    ("[Approve here|https://evil.example]", "\\[Approve here\\|https://evil.example\\]"),
    ("!https://evil.example/x.png!", "\\!https://evil.example/x.png\\!"),
    ("{code}x{code}", "\\{code\\}x\\{code\\}"),
    ("{{mono}} [~admin] #1", "\\{\\{mono\\}\\} \\[\\~admin\\] \\#1"),
    ("*b* _i_ +u+ -s- ^sup^ ~sub~ ??cite??", "\\*b\\* \\_i\\_ \\+u\\+ \\-s\\- \\^sup\\^ \\~sub\\~ \\?\\?cite\\?\\?"),
    ("artifact_integrity 2026-11-25 a+b x - y", "artifact_integrity 2026-11-25 a+b x - y"),  # cannot format
    ("(/) (x) (on) (i)", "\\(/) \\(x) \\(on) \\(i)"),
    ("a\\b \\\\ \\", "a&#92;b &#92;&#92; &#92;"),
    ("one\ntwo", "one two"),
])
def test_escape(text: str, escaped: str) -> None:
    assert jira.escape(text) == escaped


@pytest.mark.parametrize("text", ["h1. Heading", "h6. x", "bq. quote", "fn1. note", "- item", "* item", "# item",
                                  "---- rule", "  h2. indented"])
def test_user_text_never_starts_a_block(text: str) -> None:
    line = jira.render([Para([text])])
    assert not re.match(r"(h[1-6]|bq|fn\d*)\.|[-*#] |----", line), line


def test_inline_kinds_and_blocks() -> None:
    assert jira.render([Heading(3, ["Gate ", Bold("FAIL")]), Para([Code("a}b")]),
                        Bullets([(["x"], [["y"]])]), Table(["k", "v"], [["a|b", ""], [[Code("c")], "-"]])]) == (
        "h3. Gate *FAIL*\n{{a\\}b}}\n* x\n** y\n||k||v||\n|a\\|b| |\n|{{c}}|-|")
    assert jira.inline([Link("https://ok.example/a|b]", "go [here]")]) == "[go \\[here\\]|https://ok.example/a%7Cb%5D]"
    assert jira.inline([Link("javascript:alert(1)", "x")]) == "x"


def test_cells_are_cut_before_escaping() -> None:
    cell = jira.wiki_cell("|" * 600)
    assert cell == "\\|" * jira.CELL_LIMIT
    assert jira.wiki_cell(None) == " " and jira.wiki_cell({"a": [1]}) == '\\{"a": \\[1\\]\\}'


def test_the_marker_line_format_is_fixed() -> None:
    assert jira.marker("gate/data_check") == "{{clearance-ref: gate/data_check}}"
    body = gate_comment(GateResult.from_checks("data_check", "1", [CheckResult(id="c", status=Status.PASS)]))
    assert body.splitlines()[-1] == "{{clearance-ref: gate/data_check}}"
    assert body.startswith("h3. (/) Gate data_check v1: *PASS* (blocking)\n||check||status||observed||threshold||")
    assert outcome_comment("promoted", "promoted", "production/churn/1.0.0").splitlines() == [
        "h3. Promoted: promoted", "production/churn/1.0.0", "{{clearance-ref: outcome/promoted}}"]

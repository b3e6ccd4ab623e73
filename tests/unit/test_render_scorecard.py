"""The readiness scorecard: built from compliance_review's ``readiness:`` checks, shown first everywhere, escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from markdown_it import MarkdownIt

from clearance.approvals import ApprovalRecord, ApprovalRequest
from clearance.config.schema import Channel
from clearance.events import PromotionEvent
from clearance.render import jira, slack, text
from clearance.render.html import render as render_html
from clearance.render.html import to_html
from clearance.render.jira_comments import description, gate_comment, scorecard_comment
from clearance.render.markdown import render as render_markdown
from clearance.render.markdown import to_markdown
from clearance.render.report import build_report
from clearance.render.scorecard import COLUMNS, FACTORS, HEADING, factors, scorecard, scorecard_blocks
from clearance.render.slack_messages import approval_message, gate_reply
from gates.base import CheckResult, GateResult, Status
from gates.compliance_review.config import ReadinessFactor
from tests.fakes.slack_server import _block_kit_problems
from tests.unit.test_render_injection import _Page, mrkdwn_texts

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIGEST = "a" * 64
HOSTILE = "*bold* <script>alert(1)</script> [link|http://x] {code} @channel <!here>"


def readiness(factor: str, status: Status, evidence: str | None, **extra) -> CheckResult:
    title = factor.replace("_", " ").capitalize()
    message = f"{title}: {evidence}" if evidence is not None else f"{title}: missing — something that would count"
    return CheckResult(id=f"readiness:{factor}", status=status, observed=evidence, message=message, **extra)


def review(evidence: str = "runbook https://wiki.example.com/churn/runbook") -> GateResult:
    checks = [CheckResult(id="model_card", status=Status.PASS, message="all sections written"),
              CheckResult(id="kpi", status=Status.PASS)]
    for factor in FACTORS:
        if factor == "cost_model":
            checks.append(readiness(factor, Status.WARN, None))
        elif factor == "change_management":
            checks.append(readiness(factor, Status.PASS, evidence))
        else:
            checks.append(readiness(factor, Status.PASS, f"{factor} ok"))
    return GateResult.from_checks("compliance_review", "1.0.0", checks, metrics={"readiness.present": 8.0})


def data_check() -> GateResult:
    return GateResult.from_checks("data_check", "1.0.0", [CheckResult(id="rows:eval", status=Status.PASS)])


def record() -> ApprovalRecord:
    request = ApprovalRequest(run_id="r1", model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                              evidence_digest="e" * 64, required_roles={"security": 1}, excluded_principals=[],
                              initiator="dana", channels=[Channel.SLACK], opened_at=NOW,
                              deadline=NOW + timedelta(hours=1))
    return ApprovalRecord(request=request)


# --------------------------------------------------------------------------- the table


def test_factors_follow_the_gate_config() -> None:
    assert FACTORS == get_args(ReadinessFactor)


def test_no_scorecard_without_readiness_checks() -> None:
    assert scorecard([]) is None
    assert scorecard([data_check()]) is None
    no_readiness = GateResult.from_checks("compliance_review", "1.0.0", [CheckResult(id="kpi", status=Status.PASS)])
    assert scorecard([data_check(), no_readiness]) is None
    assert scorecard_blocks([no_readiness]) == []
    assert scorecard_comment([no_readiness]) is None


def test_rows_in_factor_order_with_title_status_and_evidence() -> None:
    result = review()
    shuffled = result.model_copy(update={"checks": list(reversed(result.checks))})
    table = scorecard([data_check(), shuffled])
    assert table is not None
    assert table.header == COLUMNS and table.status_column == 1
    assert [row[0] for row in table.rows] == [f.replace("_", " ").capitalize() for f in FACTORS]
    assert table.rows[0][2] == "executive_sponsor ok"
    change = table.rows[FACTORS.index("change_management")]
    assert change[2] == "runbook https://wiki.example.com/churn/runbook"
    cost = table.rows[-1]
    assert text.inline(cost[1]) == "⚠️ warn" and cost[2] == "missing — something that would count"


def test_evidence_falls_back_to_observed_and_shows_a_waiver() -> None:
    checks = [CheckResult(id="readiness:security", status=Status.PASS, observed="security_scan pass"),
              CheckResult(id="readiness:cost_model", status=Status.WAIVED, message="Cost model: missing",
                          waiver="finance signs off later", original_status=Status.WARN),
              CheckResult(id="readiness:new_factor", status=Status.FAIL, message="not found")]
    rows = factors([GateResult.from_checks("compliance_review", "1.0.0", checks)])
    assert [f.present for f in rows] == [True, False, True]
    assert [(f.title, f.status, f.evidence) for f in rows] == [
        ("Security", Status.PASS, "security_scan pass"),
        ("Cost model", Status.WAIVED, "missing (waived: finance signs off later)"),
        ("New factor", Status.FAIL, "not found"),
    ]


def test_long_evidence_is_shortened() -> None:
    rows = factors([review("x" * 5000)])
    assert all(len(f.evidence) <= 240 for f in rows)


# --------------------------------------------------------------------------- where it is shown


def test_report_shows_the_scorecard_after_the_header_and_before_the_gates() -> None:
    report = build_report(model="churn", version="1.0.0", tier="high", run_id="r1", initiator="dana",
                          artifact_digest=DIGEST, results=[data_check(), review()], outcome="promoted")
    md = to_markdown(report)
    assert md.index("artifact digest") < md.index(f"## {HEADING}") < md.index("## Gates")
    assert "8 of 9 factors with evidence" in md
    assert "| Executive sponsor | ✅ pass | executive_sponsor ok |" in md
    page = to_html(report)
    assert page.index(f"<h2>{HEADING}</h2>") < page.index("<h2>Gates</h2>")
    assert '<td>⚠️ <span class="s s-warn">warn</span></td>' in page
    without = build_report(model="churn", version="1.0.0", tier="high", run_id="r1", initiator="dana",
                           artifact_digest=DIGEST, results=[data_check()], outcome="promoted")
    assert HEADING not in to_markdown(without)


def test_slack_approval_message_starts_with_the_scorecard() -> None:
    _, blocks = approval_message(record(), [data_check(), review()], now=NOW)
    assert blocks[0]["type"] == "header"
    card = blocks[1]["text"]["text"]
    lines = card.splitlines()
    assert lines[0] == "*Readiness scorecard* — 8 of 9 factors with evidence"
    assert lines[1] == ":white_check_mark: *Executive sponsor* — executive_sponsor ok"
    assert lines[-1] == ":warning: *Cost model* — missing — something that would count"
    assert len(lines) == 1 + len(FACTORS)
    assert "fields" in blocks[2]  # tier, initiator, deadline, digest follow
    _, plain = approval_message(record(), [data_check()], now=NOW)
    assert "fields" in plain[1] and not any(HEADING in t for t in mrkdwn_texts(plain))


def test_slack_gate_reply_of_compliance_review_starts_with_the_scorecard() -> None:
    _, blocks = gate_reply(review())
    assert blocks[0]["text"]["text"].startswith("*Readiness scorecard*")
    assert "Gate compliance" in blocks[1]["text"]["text"]
    _, other = gate_reply(data_check())
    assert not any(HEADING in t for t in mrkdwn_texts(other))


def test_slack_scorecard_stays_within_limits_and_shows_every_factor() -> None:
    huge = GateResult.from_checks("compliance_review", "1.0.0", [
        readiness(f, Status.WARN, ("<&>*" * 2000)) for f in FACTORS])
    for _, blocks in (approval_message(record(), [huge], now=NOW), gate_reply(huge)):
        assert _block_kit_problems(blocks) == []
        card = next(t for t in mrkdwn_texts(blocks) if t.startswith("*Readiness"))
        assert len(card) <= slack.SECTION_TEXT_LIMIT
        assert len(card.splitlines()) == 1 + len(FACTORS) and "more" not in card.splitlines()[-1]
        assert not re.search(r"&(?!amp;|lt;|gt;)", card)  # no entity cut in half


def test_jira_description_and_gate_comment_start_with_the_scorecard() -> None:
    event = PromotionEvent(kind="approval-requested", run_id="r1", model="churn", version="1.0.0", tier="high",
                           initiator="dana", artifact_digest=DIGEST, gates=[data_check(), review()])
    body = description(event)
    assert body.startswith(f"h3. {HEADING}\n8 of 9 factors with evidence\n||factor||status||evidence||\n"
                           "|Executive sponsor|(/) pass|executive_sponsor ok|")
    assert body.index("|Cost model|(!) warn|") < body.index("Promotion of model")
    opened = description(event.model_copy(update={"kind": "opened", "gates": []}))
    assert opened.startswith("Promotion of model") and HEADING not in opened
    comment = gate_comment(review())
    assert comment.startswith(f"h3. {HEADING}") and comment.index(HEADING) < comment.index("Gate compliance_review")
    assert HEADING not in gate_comment(data_check())
    own = scorecard_comment([data_check(), review()])
    assert own is not None and own.startswith(f"h3. {HEADING}") and own.endswith(jira.marker("scorecard"))


def test_status_text_shows_the_scorecard_as_columns() -> None:
    shown = text.render(scorecard_blocks([review(HOSTILE + "\x1b]8;;http://evil\x07x\x1b[31m")]))
    assert shown.splitlines()[0] == HEADING
    assert re.search(r"^factor +status +evidence$", shown, re.MULTILINE)
    assert "\x1b" not in shown and "\x07" not in shown
    assert HOSTILE in shown  # a terminal with markup off shows the text as it is


# --------------------------------------------------------------------------- hostile evidence


@pytest.fixture
def hostile() -> list[GateResult]:
    return [data_check(), review(HOSTILE)]


def test_hostile_evidence_is_text_in_markdown(hostile: list[GateResult]) -> None:
    md = render_markdown(scorecard_blocks(hostile))
    assert "*bold*" not in md and "<script>" not in md and "[link|" not in md and "<!here>" not in md
    page = _Page()
    page.feed(MarkdownIt("commonmark", {"html": True}).enable(["table"]).render(md))
    assert set(page.tags) <= {"h2", "p", "table", "thead", "tbody", "tr", "th", "td"}, page.tags  # no em/script/a
    assert all(len(set(rows)) == 1 for rows in page.tables)  # cells stay cells
    assert HOSTILE in page.shown()


def test_hostile_evidence_is_text_in_html(hostile: list[GateResult]) -> None:
    page = _Page()
    fragment = render_html(scorecard_blocks(hostile))
    assert "<script>" not in fragment and "&lt;script&gt;alert(1)&lt;/script&gt;" in fragment
    page.feed(fragment)
    assert set(page.tags) <= {"h2", "p", "table", "thead", "tbody", "tr", "th", "td", "span"}, page.tags
    assert HOSTILE in page.shown()


def test_hostile_evidence_is_text_in_slack(hostile: list[GateResult]) -> None:
    for _, blocks in (approval_message(record(), hostile, now=NOW), gate_reply(hostile[1])):
        card = next(t for t in mrkdwn_texts(blocks) if t.startswith("*Readiness"))
        line = next(x for x in card.splitlines() if "Change management" in x)
        assert line == (":white_check_mark: *Change management* — "
                        "∗bold∗ &lt;script&gt;alert(1)&lt;/script&gt; [link|http://x] {code} @channel &lt;!here&gt;")
        assert "<" not in card and ">" not in card  # no <!here>, no <url|label> of the user's
        assert "*bold*" not in card


def test_hostile_evidence_is_text_in_jira(hostile: list[GateResult]) -> None:
    event = PromotionEvent(kind="approval-requested", run_id="r1", model="churn", version="1.0.0", tier="high",
                           initiator="dana", artifact_digest=DIGEST, gates=hostile)
    for body in (description(event), gate_comment(hostile[1]), scorecard_comment(hostile) or ""):
        line = next(x for x in body.splitlines() if x.startswith("|Change management|"))
        assert line == ("|Change management|(/) pass|\\*bold\\* <script>alert(1)</script> \\[link\\|http://x\\] "
                        "\\{code\\} @channel <\\!here>|")
        assert len(re.findall(r"(?<!\\)\|", line)) == len(COLUMNS) + 1  # cells stay cells
        rest = re.sub(r"\{\{clearance-ref: [^{}]*\}\}$|\{\{(?:[^{}\\]|\\.)*\}\}|\((?:/|!|x|i|\?)\)", "", body,
                      flags=re.MULTILINE)  # our marker, our code spans, our status icons
        assert not re.search(r"(?<!\\)[\[\]{}!]", rest), body  # no link, macro, image from the evidence


def test_the_jira_ticket_gets_the_scorecard_right_before_the_tally_when_approval_is_requested() -> None:
    from clearance.settings import JiraSettings
    from tasks.jira_plan import ops_for

    def requested(gates: list[GateResult]) -> PromotionEvent:
        return PromotionEvent(kind="approval-requested", run_id="r1", model="churn", version="1.0.0", tier="high",
                              initiator="dana", artifact_digest=DIGEST, record=record(), gates=gates)

    ops = ops_for(requested([data_check(), review(HOSTILE)]), JiraSettings())
    ids = [op["id"] for op in ops]
    assert ids.index("scorecard") == ids.index("tally") - 1
    body = next(op["body"] for op in ops if op["id"] == "scorecard")
    assert HEADING in body and "Change management" in body
    assert r"\*bold\*" in body and r"\[link\|http://x\]" in body  # the manifest's text is escaped wiki text
    assert "scorecard" not in [op["id"] for op in ops_for(requested([data_check()]), JiraSettings())]

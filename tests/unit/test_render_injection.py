"""Hostile text through every user-controlled field of every target: the injection never survives.

Fields: initiator, principal names (deciders, eligible, excluded, refused identities), comments and
reasons, check ids, check messages, observed values and thresholds, the gate message, waiver
reasons, metric names, refusal messages. Targets: Markdown, HTML, Slack Block Kit, Jira wiki.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt

from clearance.approvals import ApprovalRecord, ApprovalRequest, Decision, Outcome, Refusal, RefusalReason, Vote
from clearance.config.schema import Channel, Principal, Principals
from clearance.events import PromotionEvent
from clearance.render import jira, slack
from clearance.render.document import Heading, one_line
from clearance.render.gate import gate_blocks
from clearance.render.html import to_html
from clearance.render.jira_comments import (
    alert_comment,
    description,
    gate_comment,
    outcome_comment,
    reminder_comment,
    superseded_comment,
    tally_comment,
)
from clearance.render.lifecycle import nudge
from clearance.render.markdown import render, to_markdown
from clearance.render.report import build_report
from clearance.render.slack_messages import (
    alert_message,
    approval_message,
    gate_reply,
    outcome_reply,
    parent_message,
    reject_modal,
    reminder_reply,
)
from clearance.settings import JiraSettings
from gates.base import CheckResult, GateResult, Status
from tests.fakes.slack_server import _block_kit_problems

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DIGEST = "a" * 64
OUR_URL = "https://prefect.example/runs/1"

HOSTILE = [
    "<!channel>",
    "<https://evil.example|Prefect run>",
    "<@U123> <!here> <!subteam^S1|team>",
    "*bold* _i_ ~s~ `code`",
    "[Approve here|https://evil.example]",
    "!https://evil.example/x.png!",
    "{code}x{code}",
    "h1. Heading",
    "# Heading",
    "![img](https://evil.example/x.png)",
    "[click](https://evil.example) <https://evil.example>",
    "<script>alert(1)</script>",
    "| a | b |",
    "line one\nh1. Heading\n# Heading\n- item\n> quote\n----",
    "[~admin] (/) bq. x",
    "trailing backslash \\",
    "&lt;script&gt; &amp; &#60;",
    "- list item",
    "1. numbered",
    "    indented code",
]


def world(h: str) -> dict[str, Any]:
    gate = GateResult(gate_id="data_check", gate_version="1.0.0", status=Status.FAIL, message=h, metrics={h: 1.0},
                      checks=[CheckResult(id=h, status=Status.FAIL, observed=h, threshold={"max": h}, message=h),
                              CheckResult(id="format", status=Status.WAIVED, observed=[h], message=h, waiver=h),
                              CheckResult(id="psi", status=Status.WARN, message=h)])
    request = ApprovalRequest(run_id="r1", model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                              evidence_digest="e" * 64, required_roles={"security": 2, "business": 1},
                              excluded_principals=[h], initiator=h, channels=[Channel.SLACK, Channel.JIRA],
                              opened_at=NOW, deadline=NOW + timedelta(hours=1))
    approve = Decision(principal=h, channel=Channel.SLACK, vote=Vote.APPROVE, comment=h, roles=["security"],
                       artifact_digest=DIGEST, evidence_digest="e" * 64, at=NOW)
    reject = Decision(principal="r" + h, channel=Channel.JIRA, vote=Vote.REJECT, comment=h, roles=["business"],
                      artifact_digest=DIGEST, evidence_digest="e" * 64, at=NOW)
    refusal = Refusal(principal=None, identity=h, channel=Channel.SLACK, vote=Vote.APPROVE,
                      reason=RefusalReason.UNKNOWN_PRINCIPAL, message=h, at=NOW)
    pending = ApprovalRecord(request=request, decisions=[approve], refusals=[refusal])
    closed = ApprovalRecord(request=request, decisions=[approve, reject], refusals=[refusal], outcome=Outcome.REJECTED,
                            closed_at=NOW, closed_by=["r" + h], closing_channel=Channel.JIRA)
    event = PromotionEvent(kind="opened", run_id="r1", model="churn", version="1.0.0", tier="high", initiator=h,
                           artifact_digest=DIGEST, links={"prefect_run": OUR_URL})
    report = dict(model="churn", version="1.0.0", tier="high", run_id="r1", initiator=h, artifact_digest=DIGEST,
                  results=[gate], eligible={"security": [h, "sol"], "business": [h]})
    superseded = ApprovalRecord(request=request, decisions=[approve], outcome=Outcome.SUPERSEDED, closed_at=NOW,
                                closed_by=[f"superseded by {h}"])
    reminder = nudge(PromotionEvent(kind="reminder", run_id="r1", model="churn", version="1.0.0", tier="high",
                                    initiator=h, record=pending, status="reminder-1", message=h,
                                    mentions=["bea", h]), _people(h), NOW)
    alert = PromotionEvent(kind="alert", action="recertification", run_id="r1", model="churn", version="1.0.0",
                           tier="high", initiator=h, status=h, message=h, links={"prefect_run": OUR_URL})
    return dict(gate=gate, pending=pending, closed=closed, event=event, report=report, h=h, superseded=superseded,
                reminder=reminder, alert=alert)


def _people(h: str) -> Principals:
    """A principal with a hostile name and hostile-looking channel ids (no mention may be written for them)."""
    return Principals.model_construct(principals=[Principal.model_construct(
        id="bea", name=h, slack_id="<!channel>", jira_account_id="x]|[~admin", roles=["business"])])


def slack_messages(w: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    h = w["h"]
    modal = reject_modal("r1", DIGEST, model=h, version="1.0.0", channel=None, thread_ts=None)
    return [
        parent_message(model="churn", version="1.0.0", tier="high", initiator=h, links={"prefect_run": OUR_URL},
                       status=h),
        gate_reply(w["gate"]),
        approval_message(w["pending"], [w["gate"]], eligible={"security": [h, "sol"], "business": [h]}, now=NOW,
                         links={"prefect_run": OUR_URL}),
        approval_message(w["closed"], [w["gate"]], now=NOW),
        outcome_reply("stopped", "rejected", h),
        ("", modal["blocks"]),
        parent_message(model="churn", version="1.0.0", tier="high", initiator=h, links={}, status=h, action="rollback"),
        approval_message(w["superseded"], [w["gate"]], now=NOW),
        outcome_reply("stopped", "superseded", h),
        reminder_reply(w["reminder"]),
        alert_message(w["alert"]),
    ]


def mrkdwn_texts(node: Any) -> list[str]:
    """Every mrkdwn text object in a Block Kit structure (what Slack parses)."""
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn_texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "mrkdwn" else []
    return own + [t for value in node.values() for t in mrkdwn_texts(value)]


_OURS_IN_SLACK = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>|<https://prefect\.example/[^<>|]*\|"
                            r"[^<>]*>|^> ", re.MULTILINE)


@pytest.mark.parametrize("h", HOSTILE)
def test_slack_never_carries_a_mention_link_or_formatting_from_user_text(h: str) -> None:
    shown = []
    for text, blocks in slack_messages(world(h)):
        assert _block_kit_problems(blocks) == []
        for t in ([text] if text else []) + mrkdwn_texts(blocks):
            rest = _OURS_IN_SLACK.sub("", t)
            assert "<" not in rest and ">" not in rest, t  # no <!channel>, <@U…>, <https://…|…> of the user's
            outside_code = re.sub(r"`[^`]*`", "", rest)  # Slack formats nothing inside a code span
            assert "`" not in outside_code, t  # every user backtick became a look-alike: no code span of theirs
            for raw in ("*bold*", "_i_", "~s~"):
                assert raw not in outside_code, t
            assert not re.search(r"&(?!amp;|lt;|gt;)", t), t  # every & is one of Slack's three escapes
            shown.append(t)
    assert slack.escape(h) in "\n".join(shown)  # the text is shown (escaped), not dropped


_OURS_IN_JIRA = re.compile(r"\{\{clearance-ref: [^{}]*\}\}$|\{\{(?:[^{}\\]|\\.)*\}\}|\[https://prefect\.example/[^\]|]*\]"
                           r"|^h3\. \(!\) ", re.MULTILINE)  # the last: the reminder's own warning icon
_OUR_HEADINGS = ("h3. (x) Gate data_check", "h3. Sign-off: ", "h3. Stopped: ", "h3. Superseded",
                 "h3. (!) *Reminder 1*: ", "h3. (x) Re-certification of churn 1.0.0: ")


def jira_bodies(w: dict[str, Any]) -> list[str]:
    settings = JiraSettings(url="https://jira.example", project="CLR", email="bot@example.com", api_token="x")
    return [gate_comment(w["gate"]), tally_comment(w["pending"], settings, now=NOW),
            tally_comment(w["closed"], settings, now=NOW), description(w["event"]),
            outcome_comment("stopped", "rejected", w["h"]), "|" + jira.wiki_cell(w["h"]) + "|",
            superseded_comment(w["superseded"]), reminder_comment(w["reminder"]), alert_comment(w["alert"]),
            description(w["alert"]), description(w["event"].model_copy(update={"action": "rollback"})),
            tally_comment(w["superseded"], settings, now=NOW)]


@pytest.mark.parametrize("h", HOSTILE)
def test_jira_never_carries_a_link_image_macro_table_or_heading_from_user_text(h: str) -> None:
    bodies = jira_bodies(world(h))
    for body in bodies:
        rest = _OURS_IN_JIRA.sub("", body)
        assert not re.search(r"(?<!\\)[\[\]{}!]", rest), body  # links, images, macros, mentions: all escaped
        assert "\\\\" not in body and not re.search(r"\\$", body, re.MULTILINE)  # no line break, no dangling escape
        for raw in ("*bold*", "_i_", "~s~"):
            assert raw not in body
        columns = None
        for line in body.splitlines():
            if re.match(r"\s*(h[1-6]|bq|fn\d*)\.", line):
                assert line.startswith(_OUR_HEADINGS), line
            assert not re.match(r"\s*(#|-|bq\.)", line), line  # no list, rule or quote from user text
            if line.startswith("||"):
                columns = line.count("||") - 1
            elif line.startswith("|") and columns:
                assert len(re.findall(r"(?<!\\)\|", line)) == columns + 1, line  # cells stay cells
    assert jira.escape(h) in bodies[0] and jira.escape(h) in bodies[2]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.tables: list[list[int]] = []  # cells per row, per table

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_data(self, data):
        self.text.append(data)

    def shown(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text))


MARKDOWN_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "code", "strong"}


def markdown_pages(w: dict[str, Any]) -> list[tuple[str, int]]:
    """(Markdown, how many headings we wrote) for the run report, a dry-run report and a gate artifact."""
    full = build_report(**w["report"], outcome="rejected", record=w["closed"], note=w["h"])
    dry = build_report(**w["report"], outcome="dry-run", request=w["pending"].request)
    gate = gate_blocks(w["gate"])
    return [(to_markdown(doc), sum(isinstance(b, Heading) for b in doc.blocks)) for doc in (full, dry)] + [
        (render(gate), sum(isinstance(b, Heading) for b in gate))]


@pytest.mark.parametrize("h", HOSTILE)
def test_markdown_shows_user_text_as_text(h: str) -> None:
    viewer = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    for md, headings in markdown_pages(world(h)):
        assert sum(line.startswith("#") for line in md.splitlines()) == headings  # no heading from user text
        page = _Page()
        page.feed(viewer.render(md))
        assert set(page.tags) <= MARKDOWN_TAGS, set(page.tags) - MARKDOWN_TAGS  # no a, img, script, em, hr, pre…
        assert sum(t in ("h1", "h2", "h3") for t in page.tags) == headings
        assert page.tables and all(len(set(rows)) == 1 for rows in page.tables), page.tables  # cells stay cells
        if md.startswith("# churn"):
            assert one_line(h).strip() in page.shown(), page.shown()


@pytest.mark.parametrize("h", HOSTILE)
def test_html_report_shows_user_text_as_text(h: str) -> None:
    w = world(h)
    page = _Page()
    page.feed(to_html(build_report(**w["report"], outcome="rejected", record=w["closed"], note=h)))
    allowed = MARKDOWN_TAGS | {"html", "head", "meta", "title", "style", "body", "footer", "time", "span"}
    assert set(page.tags) <= allowed, set(page.tags) - allowed
    assert one_line(h) in "".join(page.text)

"""Finding 8, end to end: user text reached Slack, Jira and the reports as markup.

Hostile text goes in where people type it — the initiator name (the Prefect "Run" form and the REST
API take it as a parameter), a decision's comment, a rejection's reason, a principal id typed into the
Prefect UI sign-off form — through the intake into a real approvals record (``submit_decision`` with
compare-and-swap, on :class:`tests.fakes.memory_store.MemoryStore`). The records the intake publishes
are then rendered as the channels render them: the Slack approval message (Block Kit JSON), the Jira
tally comment, and the run report in Markdown and HTML. None of them may carry a mention, link, image,
heading or formatting of the user's — and each must still show the text, escaped.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt

from clearance.approvals import ApprovalRecord, ApprovalRequest, Outcome, RefusalReason, Vote
from clearance.config.schema import Channel, Principals
from clearance.core.digests import canonical_json
from clearance.core.keys import approvals_key, run_index_key
from clearance.render import jira, slack
from clearance.render.document import one_line
from clearance.render.html import to_html
from clearance.render.jira_comments import tally_comment
from clearance.render.markdown import to_markdown
from clearance.render.report import build_report
from clearance.render.slack_messages import approval_message
from clearance.settings import JiraSettings
from tests.fakes.memory_store import MemoryStore
from tests.integration.promotion_kit import PRINCIPALS

HOSTILE = [
    "<!channel>",
    "<https://evil.example|Prefect run>",
    "[Approve here|https://evil.example]",
    "!https://evil.example/x.png!",
    "# Heading",
    "![img](https://evil.example/x.png)",
]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "c" * 64
OUR_URL = "https://prefect.example/runs/1"
ELIGIBLE = {"security": ["sam", "sol"], "business": ["bea"]}


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.records: list[ApprovalRecord] = []

    def handle(self, event) -> None:
        self.records.append(event.record)


def through_the_intake(h: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ApprovalRecord, ApprovalRecord]:
    """(pending, closed) records, as the intake published them, with ``h`` wherever people type text."""
    import tasks.approval_intake
    import tasks.channels
    import tasks.signoff
    from tasks.approval_intake import receive_decision
    from tasks.approvals_record import open_record

    store = MemoryStore(now=NOW)
    recorder = Recorder()
    monkeypatch.setattr(tasks.signoff, "store", lambda: store)
    monkeypatch.setattr(tasks.channels, "active_notifiers", lambda settings=None: [recorder])
    monkeypatch.setattr(tasks.approval_intake, "wake_run", lambda run_id, **_: True)
    people = Principals.model_validate({"principals": PRINCIPALS})

    # The initiator is whatever name the run was started with.
    request = ApprovalRequest(
        run_id=str(uuid.uuid4()), model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
        evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
        excluded_principals=sorted({h, "dana"}), initiator=h,
        channels=[Channel.CLI, Channel.PREFECT_UI, Channel.SLACK, Channel.JIRA], opened_at=NOW,
        deadline=NOW + timedelta(hours=1))
    open_record(store, request)
    key = approvals_key(request.model, request.version, request.run_id)
    store.put_if_absent(run_index_key(request.run_id), canonical_json({"run_id": request.run_id, "record": key}))

    store.advance(timedelta(minutes=1))  # an approval whose comment is the hostile text
    assert receive_decision(store, request.run_id, principal=people.by_id("sam"), identity="sam",
                            channel=Channel.CLI, vote=Vote.APPROVE, comment=h, artifact_digest=DIGEST).accepted
    store.advance(timedelta(minutes=1))  # a Prefect UI form with the hostile text typed as the principal id
    refusal = tasks.signoff.submit_form_decision.fn(request.run_id, people, h, Vote.APPROVE, h, DIGEST, "sign-off-1")
    assert refusal is not None and refusal.reason is RefusalReason.UNKNOWN_PRINCIPAL
    pending = ApprovalRecord.model_validate_json(store.get_bytes(key)[0])
    store.advance(timedelta(minutes=1))  # a rejection whose reason is the hostile text
    assert receive_decision(store, request.run_id, principal=people.by_id("bea"), identity="bea",
                            channel=Channel.JIRA, vote=Vote.REJECT, comment=h, artifact_digest=DIGEST).accepted

    (approved, rejected) = recorder.records  # what the channels were given to show
    assert approved.outcome is Outcome.PENDING and rejected.outcome is Outcome.REJECTED
    assert approved.request.initiator == h and [d.comment for d in rejected.decisions] == [h, h]
    assert [r.identity for r in pending.refusals] == [f"prefect-ui:{h}"]
    return pending, rejected


# --------------------------------------------------------------------------- Slack


_OURS_IN_SLACK = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>|<https://prefect\.example/[^<>|]*\|"
                            r"[^<>]*>|^> ", re.MULTILINE)


def mrkdwn_texts(node: Any) -> list[str]:
    """Every text Slack parses as mrkdwn in a Block Kit structure."""
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn_texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "mrkdwn" else []
    return own + [t for value in node.values() for t in mrkdwn_texts(value)]


@pytest.mark.parametrize("h", HOSTILE)
def test_slack_approval_message_json_carries_no_markup_of_the_users(h: str, monkeypatch) -> None:
    pending, closed = through_the_intake(h, monkeypatch)
    shown = []
    for record in (pending, closed):
        text, blocks = approval_message(record, [], eligible=ELIGIBLE, links={"prefect_run": OUR_URL}, now=NOW)
        payload = json.dumps({"text": text, "blocks": blocks})
        assert "<!channel>" not in payload and "<https://evil" not in payload  # as sent to chat.update
        for t in [text, *mrkdwn_texts(blocks)]:
            rest = _OURS_IN_SLACK.sub("", t)
            assert "<" not in rest and ">" not in rest, t  # no mention or link of the user's survives
            assert not re.search(r"&(?!amp;|lt;|gt;)", t), t
            shown.append(t)
    assert slack.escape(h) in "\n".join(shown)  # the initiator and the reason are shown, escaped


# --------------------------------------------------------------------------- Jira


_OURS_IN_JIRA = re.compile(r"\{\{clearance-ref: [^{}]*\}\}$|\{\{(?:[^{}\\]|\\.)*\}\}", re.MULTILINE)


@pytest.mark.parametrize("h", HOSTILE)
def test_jira_tally_comment_carries_no_markup_of_the_users(h: str, monkeypatch) -> None:
    settings = JiraSettings(url="https://jira.example", project="CLR", email="bot@example.com", api_token="x")
    bodies = [tally_comment(record, settings, now=NOW) for record in through_the_intake(h, monkeypatch)]
    for body in bodies:
        rest = _OURS_IN_JIRA.sub("", body)
        assert not re.search(r"(?<!\\)[\[\]{}!]", rest), body  # no link, image, macro or mention of the user's
        for line in body.splitlines():
            assert not re.match(r"\s*(h[1-6]|bq)\.", line) or line.startswith("h3. Sign-off: "), line
            assert not re.match(r"\s*#", line), line  # no numbered list from "# Heading"
    assert all(jira.escape(h) in body for body in bodies)  # comments, reasons, the excluded initiator: shown


# --------------------------------------------------------------------------- the reports


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [value or "" for _, value in attrs]

    def handle_data(self, data):
        self.text.append(data)

    def shown(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text))


def report(record: ApprovalRecord):
    request = record.request
    return build_report(model=request.model, version=request.version, tier=request.tier, run_id=request.run_id,
                        initiator=request.initiator, artifact_digest=request.artifact_digest, results=[],
                        outcome="rejected", record=record, eligible=ELIGIBLE)


TEXT_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "code", "strong"}


@pytest.mark.parametrize("h", HOSTILE)
def test_markdown_report_shows_user_text_as_text(h: str, monkeypatch) -> None:
    _, closed = through_the_intake(h, monkeypatch)
    md = to_markdown(report(closed))
    page = _Page()
    page.feed(MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md))
    assert set(page.tags) <= TEXT_TAGS, set(page.tags) - TEXT_TAGS  # no a, img, script, em…
    assert page.tags.count("h1") == 1 and [line for line in md.splitlines() if line.startswith("# ")] == [
        md.splitlines()[0]]  # the one title heading is ours
    assert not any("evil.example" in value for value in page.attrs)
    assert one_line(h).strip() in page.shown()


@pytest.mark.parametrize("h", HOSTILE)
def test_html_report_shows_user_text_as_text(h: str, monkeypatch) -> None:
    _, closed = through_the_intake(h, monkeypatch)
    page = _Page()
    page.feed(to_html(report(closed)))
    allowed = TEXT_TAGS | {"html", "head", "meta", "title", "style", "body", "footer", "time", "span"}
    assert set(page.tags) <= allowed, set(page.tags) - allowed
    assert not any("evil.example" in value for value in page.attrs)
    assert one_line(h) in "".join(page.text)

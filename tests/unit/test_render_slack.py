"""The Slack renderer: mrkdwn escaping, Block Kit limits, and the message layouts the Slack app relies on."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from clearance.render import slack
from clearance.render.document import Bold, Code, Link, Moment
from clearance.render.slack_messages import (
    ACTIONS_BLOCK,
    APPROVE_ACTION,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_ACTION,
    REJECT_MODAL,
    approval_message,
    gate_reply,
    parent_message,
    reject_modal,
)
from gates.base import CheckResult, GateResult, Status
from tests.fakes.slack_server import _block_kit_problems
from tests.unit.test_slack_notifier import DIGEST, decision, make_record


@pytest.mark.parametrize(("text", "escaped"), [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<https://evil.example|Prefect run>", "&lt;https://evil.example|Prefect run&gt;"),
    ("<@U123>", "&lt;@U123&gt;"),
    ("a & b", "a &amp; b"),
    ("*bold* _it_ ~st~", "∗bold∗ ＿it＿ ∼st∼"),
    ("`code` ``x``", "ˋcodeˋ ˋˋxˋˋ"),
    ("snake_case a*b 1 * 2 a ~ b", "snake_case a*b 1 * 2 a ~ b"),  # cannot format: left as typed
    ("two\nlines", "two lines"),
    ("> quote", "\u200b&gt; quote"),
])
def test_escape(text: str, escaped: str) -> None:
    assert slack.escape(text) == escaped


def test_inline_kinds() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert slack.mrkdwn([Bold("*x*"), " ", Code("a`<b>"), " ", Moment(when)]) == (
        "*∗x∗* `aˋ&lt;b&gt;` <!date^1767323040^{date_short_pretty} {time}|2026-01-02 03:04 UTC>")
    assert slack.mrkdwn([Link("https://ok.example/?a=1&b=|2", "<x>")]) == "<https://ok.example/?a=1&amp;b=%7C2|&lt;x&gt;>"
    assert slack.mrkdwn([Link("javascript:alert(1)", "click")]) == "click"


def test_cut_never_leaves_half_an_entity_or_link() -> None:
    for text in ["a" * 10 + "&amp;" * 5, "a" * 10 + "<https://x.example|label> tail"]:
        for limit in range(5, len(text)):
            cut = slack.cut(text, limit)
            assert len(cut) <= limit and cut.endswith("…")
            assert not re.search(r"&[a-z]*…$", cut) and cut.count("<") == cut.count(">"), cut


def test_long_content_stays_within_slack_limits() -> None:
    checks = [CheckResult(id=f"check_{i}", status=Status.FAIL, observed="<!channel>" * 50, message="&" * 400)
              for i in range(200)]
    gate = GateResult(gate_id="g", gate_version="1", status=Status.FAIL, checks=checks, message="m" * 5000,
                      metrics={f"m{i}": float(i) for i in range(100)})
    for _, blocks in [gate_reply(gate), approval_message(make_record("r"), [gate] * 5)]:
        assert _block_kit_problems(blocks) == []
        for block in blocks:
            text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
            assert len(text) <= slack.SECTION_TEXT_LIMIT
            assert not re.search(r"&[a-z]*…", text)
            for field in block.get("fields", []):
                assert len(field["text"]) <= slack.FIELD_TEXT_LIMIT


def test_parent_message_layout() -> None:
    text, blocks = parent_message(model="churn", version="1.0.0", tier="high", initiator="dana",
                                  links={"prefect_run": "http://127.0.0.1:4200/runs/x"})
    assert text == "Promotion of churn 1.0.0 (high tier) by dana: gates running"
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert [f["text"] for f in blocks[1]["fields"]] == ["*Model*\nchurn", "*Version*\n1.0.0", "*Risk tier*\nhigh",
                                                        "*Initiator*\ndana"]
    assert blocks[2]["text"]["text"] == "*Status:* gates running"
    assert blocks[3]["elements"][0]["text"] == "<http://127.0.0.1:4200/runs/x|Prefect run>"


def test_gate_reply_layout() -> None:
    gate = GateResult(gate_id="artifact_integrity", gate_version="1", status=Status.WARN, checks=[
        CheckResult(id="size_limit", status=Status.WARN, observed=10, threshold=5, message="big"),
        CheckResult(id="format", status=Status.WAIVED, message="pickle", waiver="legacy model, ticket ML-12"),
    ], metrics={"size_mb": 10.0})
    text, blocks = gate_reply(gate)
    assert text == "gate artifact_integrity: warn"
    assert blocks[0]["text"]["text"] == (
        ":warning: Gate artifact_integrity v1: *WARN* (blocking)\n"
        "    • `size_limit` warn observed `10` vs `5` big\n"
        "    • `format` waived pickle — waived: legacy model, ticket ML-12")
    assert blocks[1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "size_mb = 10"}]}


def test_approval_message_keeps_its_actions_and_button_values() -> None:
    record = make_record("run-1", [decision("sam", "security")])
    _, blocks = approval_message(record, [], eligible={"security": ["sam"], "business": ["bea"]})
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    assert actions["block_id"] == ACTIONS_BLOCK
    assert [(e["action_id"], e["style"], json.loads(e["value"])) for e in actions["elements"]] == [
        (APPROVE_ACTION, "primary", {"run": "run-1", "digest": DIGEST}),
        (REJECT_ACTION, "danger", {"run": "run-1", "digest": DIGEST})]
    assert actions["elements"][0]["confirm"]["text"]["text"] == f"You approve churn 1.0.0, artifact `{DIGEST[:16]}`…."
    approvals = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Approvals*"))
    assert approvals == ("*Approvals*\n:hourglass_flowing_sand: *business*: 0/1 (nobody yet) — needs 1 more from bea\n"
                         ":white_check_mark: *security*: 1/1 (sam)")


def test_reject_modal_is_unchanged() -> None:
    view = reject_modal("run-1", DIGEST, model="churn", version="1.0.0", channel="C1", thread_ts="1.2")
    assert view["callback_id"] == REJECT_MODAL and view["type"] == "modal"
    assert json.loads(view["private_metadata"]) == {"run": "run-1", "digest": DIGEST, "channel": "C1",
                                                    "thread_ts": "1.2"}
    assert [view[k]["text"] for k in ("title", "submit", "close")] == ["Reject promotion", "Reject", "Cancel"]
    section, field = view["blocks"]
    assert section["text"]["text"] == (f"Reject *churn 1.0.0* (artifact `{DIGEST[:16]}`…). "
                                       "One authorised rejection stops the promotion.")
    assert field["block_id"] == REASON_BLOCK and field["element"]["action_id"] == REASON_INPUT
    assert field["element"]["min_length"] == 1 and field["element"]["max_length"] == 2000

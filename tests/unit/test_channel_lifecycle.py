"""Lifecycle events in the channels: titles by action, reminders with mentions, alerts, superseded requests.

Pure renderers and plans first; then the Slack notifier against the local Slack (in-memory store).
Every user-controlled string is hostile, and no markup of it survives in Slack mrkdwn or Jira wiki.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from clearance.approvals import ApprovalRecord, ApprovalRequest, Decision, Outcome, Vote
from clearance.config.schema import Channel, Notify, Principals
from clearance.core.keys import slack_state_key
from clearance.events import PromotionEvent
from clearance.render import jira, slack
from clearance.render.document import Mention
from clearance.render.jira_comments import description
from clearance.render.lifecycle import alert_summary, nudge, nudge_ref, run_title
from clearance.render.slack_messages import (
    APPROVE_ACTION,
    REJECT_ACTION,
    alert_message,
    approval_message,
    outcome_reply,
    parent_message,
    reminder_reply,
)
from clearance.settings import JiraSettings
from clearance.settings.slack import SlackSettings
from tasks.jira_plan import ops_for, ticket_info
from tasks.slack import SlackNotifier
from tests.fakes.memory_store import MemoryStore
from tests.fakes.slack_server import FakeSlack, _block_kit_problems, button

HOSTILE = "*bold* <script> [link|x] {code} @channel <!here>"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIGEST = "a" * 64
CHANNEL = "C0123456789"
SUPERSEDED = getattr(Outcome, "SUPERSEDED", None)
needs_superseded = pytest.mark.skipif(SUPERSEDED is None, reason="Outcome.SUPERSEDED not added yet (helper H3)")

PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "dana", "name": "Dana", "slack_id": "U0DANA00001", "jira_account_id": "acc-dana", "roles": []},
    {"id": "sam", "name": "Sam", "slack_id": "U0SAM000002", "jira_account_id": "557058:f58131cb-b67d", "roles":
        ["security"]},
    {"id": "bea", "name": HOSTILE, "roles": ["business"]},  # no channel ids: named, escaped
]})


def make_record(run_id: str = "run-1", decisions=(), outcome: Outcome = Outcome.PENDING,
                closed_by: list[str] | None = None) -> ApprovalRecord:
    request = ApprovalRequest(run_id=run_id, model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                              evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                              excluded_principals=["dana"], initiator="dana", channels=[Channel.SLACK, Channel.JIRA],
                              opened_at=NOW - timedelta(hours=1), deadline=NOW + timedelta(hours=3))
    record = ApprovalRecord(request=request, decisions=list(decisions), outcome=outcome)
    if outcome.closed:
        record.closed_at, record.closing_channel = NOW, Channel.CLI
        record.closed_by = closed_by if closed_by is not None else [d.principal for d in decisions]
    return record


def approve(who: str, role: str) -> Decision:
    return Decision(principal=who, channel=Channel.SLACK, vote=Vote.APPROVE, roles=[role], artifact_digest=DIGEST,
                    evidence_digest="e" * 64, at=NOW - timedelta(minutes=30))


def event(kind: str, run_id: str = "run-1", **details) -> PromotionEvent:
    values = dict(kind=kind, run_id=run_id, model="churn", version="1.0.0", tier="high", initiator="dana",
                  artifact_digest=DIGEST, links={"prefect_run": "http://prefect.example/runs/flow-run/x"})
    return PromotionEvent(**(values | details))


def by_id(ops: list[dict]) -> dict[str, dict]:
    return {op["id"]: op for op in ops}


def no_slack_injection(text: str) -> None:
    assert "<!here>" not in text and "<script>" not in text and "*bold*" not in text and "<link" not in text


def no_jira_injection(text: str) -> None:
    assert "[link|x]" not in text and "{code}" not in text and "*bold*" not in text


# --------------------------------------------------------------------------- titles by action


def test_runs_are_titled_by_what_they_do():
    assert run_title("promotion", "churn", "2.0.0") == "Promote churn 2.0.0"
    assert run_title("recertification", "churn", "2.0.0") == "Re-certify churn 2.0.0"
    assert run_title("rollback", "churn", "1.0.0") == "Roll back churn to 1.0.0"

    text, blocks = parent_message(model="churn", version="2.0.0", tier="high", initiator="sched",
                                  links={}, action="recertification")
    assert text == "Re-certify churn 2.0.0 (high tier) by sched: gates running"
    assert blocks[0]["text"]["text"] == "Re-certify churn 2.0.0"
    text, blocks = parent_message(model="churn", version="1.0.0", tier="high", initiator="dana", links={},
                                  action="rollback", status="waiting for sign-off")
    assert text == "Roll back churn to 1.0.0 (high tier) by dana: waiting for sign-off"
    assert blocks[0]["text"]["text"] == "Roll back churn to 1.0.0"
    assert blocks[1]["fields"][1]["text"] == "*Roll back to*\n1.0.0"
    # A promotion keeps its layout byte for byte.
    assert parent_message(model="churn", version="1.0.0", tier="high", initiator="dana", links={}) == \
        parent_message(model="churn", version="1.0.0", tier="high", initiator="dana", links={}, action="promotion")

    settings = JiraSettings(project="CLR")
    assert ticket_info(event("opened"), settings)["summary"] == "Promote churn 1.0.0 (high tier)"
    info = ticket_info(event("opened", action="recertification"), settings)
    assert info["summary"] == "Re-certify churn 1.0.0 (high tier)" and "Re-certify model *churn*" in info["description"]
    info = ticket_info(event("opened", action="rollback", version="0.9.0"), settings)
    assert info["summary"] == "Roll back churn to 0.9.0 (high tier)"
    assert "Roll back model *churn* to version *0.9.0*" in info["description"]
    assert "Promotion of model *churn* version *1.0.0*" in description(event("opened"))


# --------------------------------------------------------------------------- mentions


def test_mentions_are_written_only_for_ids_of_the_right_shape():
    assert slack.mrkdwn([Mention("Sam", slack_id="U0SAM000002")]) == "<@U0SAM000002>"
    assert slack.mrkdwn([Mention(HOSTILE, slack_id="<!here>")]) == slack.escape(HOSTILE)
    assert slack.mrkdwn([Mention("x", slack_id="U0SAM\n")]) == "x"
    assert jira.inline([Mention("Sam", jira_account_id="557058:f58131cb-b67d")]) == "[~accountid:557058:f58131cb-b67d]"
    assert jira.inline([Mention(HOSTILE, jira_account_id="x]|[~admin")]) == jira.escape(HOSTILE)
    assert jira.inline([Mention("Sam", slack_id="U0SAM000002")]) == "Sam"


# --------------------------------------------------------------------------- reminders and escalations


def test_reminder_numbers_give_stable_refs():
    assert nudge_ref(event("reminder", status="reminder-2")) == (2, "reminder/2")
    assert nudge_ref(event("escalated", status="escalation-1")) == (1, "escalation/1")
    from clearance.approvals.models import ReminderSent

    record = make_record()
    record.reminders = [ReminderSent(kind="reminder", number=1, at=NOW, to=["sam"]),
                        ReminderSent(kind="escalation", number=1, at=NOW, to=["dana"]),
                        ReminderSent(kind="reminder", number=2, at=NOW, to=["sam"])]
    assert nudge_ref(event("reminder", record=record)) == (2, "reminder/2")  # the sweep's record says which
    assert nudge_ref(event("escalated", record=record)) == (1, "escalation/1")
    number, ref = nudge_ref(event("reminder", message="please"))
    assert number is None and ref.startswith("reminder/") and ref == nudge_ref(event("reminder", message="please"))[1]


def test_a_reminder_mentions_the_people_still_needed_in_slack_and_jira():
    record = make_record(decisions=[approve("sam", "security")])
    reminder = event("reminder", record=record, status="reminder-2", mentions=["sam", "bea", "ghost"],
                     message=HOSTILE)
    item = nudge(reminder, PRINCIPALS, NOW)
    assert item.missing == [("business", 1)] and item.deadline == record.request.deadline

    text, blocks = reminder_reply(item)
    shown = blocks[0]["text"]["text"]
    assert _block_kit_problems(blocks) == []
    assert "<@U0SAM000002>" in shown and "<@U0SAM000002>" in text  # the notification mentions too
    assert slack.escape(HOSTILE) in shown and "ghost" in shown  # no Slack id: the escaped name
    assert "*Reminder 2*" in shown and "Still needed: business (1)" in shown and "<!date^" in shown
    no_slack_injection(shown + text)

    ops = by_id(ops_for(reminder, JiraSettings(project="CLR"), PRINCIPALS, now=NOW))
    body = ops["reminder/2"]["body"]
    assert ops["reminder/2"]["kind"] == "comment" and body.endswith("{{clearance-ref: reminder/2}}")
    assert "[~accountid:557058:f58131cb-b67d]" in body and jira.escape(HOSTILE) in body
    assert "Still needed: business (1)" in body and f"{record.request.deadline:%Y-%m-%d %H:%M:%S} UTC" in body
    no_jira_injection(body)
    # Without the configs the people are named, never mentioned.
    body = by_id(ops_for(reminder, JiraSettings(project="CLR"), None, now=NOW))["reminder/2"]["body"]
    assert "[~accountid:" not in body and "sam" in body

    escalation = event("escalated", record=record, status="escalation-1", mentions=["dana"])
    body = by_id(ops_for(escalation, JiraSettings(), PRINCIPALS, now=NOW))["escalation/1"]["body"]
    assert "*Escalation 1*" in body and "[~accountid:acc-dana]" in body


# --------------------------------------------------------------------------- alerts


@pytest.mark.parametrize("action, status, summary", [
    ("recertification", "recertification-failed", "Re-certification of churn 1.0.0 failed"),
    ("recertification", "lapsed", "Certification of churn 1.0.0 lapsed"),
    ("rollback", "rolled-back", "churn rolled back to 1.0.0"),
])
def test_an_alert_is_a_top_level_message_and_a_ticket_with_its_summary(action, status, summary):
    alert = event("alert", action=action, status=status, message=HOSTILE)
    assert alert_summary(alert) == summary
    text, blocks = alert_message(alert)
    shown = json.dumps(blocks)
    assert _block_kit_problems(blocks) == [] and text.startswith(summary)
    assert blocks[0]["text"]["text"] == summary and slack.escape(HOSTILE) in blocks[1]["text"]["text"]
    assert "http://prefect.example/runs/flow-run/x" in shown
    no_slack_injection(shown + text)

    info = ticket_info(alert, JiraSettings(project="CLR"))
    assert info["summary"] == summary and jira.escape(HOSTILE) in info["description"]
    (op,) = ops_for(alert, JiraSettings(project="CLR"))
    assert op["id"] == f"alert/{status}" and op["kind"] == "comment" and jira.escape(HOSTILE) in op["body"]
    no_jira_injection(op["body"] + info["description"])


# --------------------------------------------------------------------------- superseded


@needs_superseded
def test_a_superseded_request_loses_its_buttons_and_its_ticket_is_closed():
    assert SUPERSEDED is not None
    record = make_record(decisions=[approve("sam", "security")], outcome=SUPERSEDED,
                         closed_by=["superseded by 2.0.0 (run run-newer)"])
    _, blocks = approval_message(record, [], now=NOW)
    shown = json.dumps(blocks)
    assert button(blocks, APPROVE_ACTION) is None and button(blocks, REJECT_ACTION) is None
    assert "*Superseded* by 2.0.0 (run run-newer)" in shown and ":fast_forward:" in shown

    ops = by_id(ops_for(event("closed", record=record), JiraSettings(project="CLR")))
    assert ops["state/rejected"]["state"] == "rejected" and "run-newer" in ops["superseded"]["body"]
    assert "Sign-off: superseded" in ops["tally"]["body"]
    stopped = by_id(ops_for(event("stopped", record=record, status="superseded", message="newer 2.0.0"),
                            JiraSettings(project="CLR")))
    assert "state/rejected" in stopped and "Stopped: superseded" in stopped["outcome/stopped"]["body"]


def test_a_stopped_superseded_run_ends_with_its_own_reply_and_a_rejected_ticket():
    text, blocks = outcome_reply("stopped", "superseded", HOSTILE)
    assert text.startswith("superseded") and blocks[0]["text"]["text"].startswith(":fast_forward: *superseded*")
    no_slack_injection(json.dumps(blocks) + text)
    ops = by_id(ops_for(event("stopped", status="superseded", message=HOSTILE), JiraSettings(project="CLR")))
    assert ops["state/rejected"]["state"] == "rejected"
    no_jira_injection(ops["outcome/stopped"]["body"])


# --------------------------------------------------------------------------- the Slack notifier


@pytest.fixture(scope="module")
def fake():
    server = FakeSlack(channels=(CHANNEL, "C0MODEL0001")).start()
    yield server
    server.stop()
    assert server.violations == []


def test_slack_posts_a_reminder_once_in_the_thread_and_an_alert_in_the_models_channel(fake, monkeypatch):
    import tasks.wiring

    monkeypatch.setattr(tasks.wiring, "config_set", lambda _dir=None: type("C", (), {"principals": PRINCIPALS})())
    store = MemoryStore()
    notifier = SlackNotifier(SlackSettings(bot_token=fake.bot_token, base_url=fake.base_url, default_channel=CHANNEL,
                                           max_retries=1), store, config_dir="/nonexistent")
    run = "run-remind"
    record = make_record(run, decisions=[approve("sam", "security")])
    notifier.handle(event("approval-requested", run, record=record))
    reminder = event("reminder", run, record=record, status="reminder-1", mentions=["bea", "sam"])
    notifier.handle(reminder)
    notifier.handle(reminder)  # a retried sweep posts nothing new
    state = store.get_json(slack_state_key("churn", "1.0.0", run))
    replies = fake.thread(CHANNEL, state["parent_ts"])
    (posted,) = [r for r in replies if r["ts"] == state["reminders"]["reminder/1"]]
    assert "<@U0SAM000002>" in posted["blocks"][0]["text"]["text"]

    alert = event("alert", "run-recert", action="recertification", status="lapsed", message=HOSTILE,
                  notify=Notify(slack_channel="C0MODEL0001"))
    notifier.handle(alert)
    notifier.handle(alert)
    state = store.get_json(slack_state_key("churn", "1.0.0", "run-recert"))
    ts = state["alerts"]["alert/lapsed"]["ts"]
    message = fake.messages[("C0MODEL0001", ts)]
    assert message.get("thread_ts") in (None, ts) and "Certification of churn 1.0.0 lapsed" in message["text"]
    assert "parent_ts" not in state  # an alert is no thread
    assert len([c for c in fake.calls_of("chat.postMessage") if c.params.get("channel") == "C0MODEL0001"]) == 1


@needs_superseded
def test_slack_shows_a_superseded_close_on_the_approval_message_and_the_parent(fake):
    assert SUPERSEDED is not None
    store = MemoryStore()
    notifier = SlackNotifier(SlackSettings(bot_token=fake.bot_token, base_url=fake.base_url, max_retries=1), store,
                             config_dir="/nonexistent")
    run = "run-superseded"
    notifier.handle(event("approval-requested", run, record=make_record(run), notify=Notify(slack_channel=CHANNEL)))
    closed = make_record(run, outcome=SUPERSEDED, closed_by=["superseded by 2.0.0 (run run-newer)"])
    # From tasks/supersede.py: no routing on the event; the thread's channel is found from the stored state.
    notifier.handle(event("closed", run, record=closed, status="superseded"))
    state = store.get_json(slack_state_key("churn", "1.0.0", run))
    message = fake.messages[(CHANNEL, state["approvals"][0]["ts"])]
    assert button(message["blocks"], APPROVE_ACTION) is None
    assert "Superseded* by 2.0.0 (run run-newer)" in json.dumps(message["blocks"])
    assert "sign-off superseded by 2.0.0 (run run-newer)" in fake.messages[(CHANNEL, state["parent_ts"])]["text"]
    notifier.handle(event("stopped", run, record=closed, status="superseded", message="superseded by 2.0.0"))
    last = fake.thread(CHANNEL, state["parent_ts"])[-1]
    assert last["text"].startswith("superseded") and ":fast_forward:" in last["blocks"][0]["text"]["text"]

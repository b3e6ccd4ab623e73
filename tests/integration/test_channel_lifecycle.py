"""Lifecycle events through the real channel wiring: a reminder, an alert and a superseded close.

The events are published with :func:`tasks.channels.publish_event` exactly as the reminder sweep, the
expiry sweep and the supersede hook publish them: the notifiers come from ``CLEARANCE_*`` (pointing at
the local Slack and Jira fakes), their state lives in the session's SeaweedFS, and the people come from
the config dir. No Prefect run is needed, so this stays quick.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml

from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, button

pytestmark = pytest.mark.integration

CHANNEL = "C0123456789"
MODEL_CHANNEL = "C0MODEL0001"
HOSTILE = "*bold* <script> [link|x] {code} @channel <!here>"
PEOPLE = [
    {"id": "dana", "email": "dana@example.com", "slack_id": "U0DANA00001", "jira_account_id": "acc-dana", "roles": []},
    {"id": "sam", "email": "sam@example.com", "slack_id": "U0SAM000002", "jira_account_id": "acc-sam",
     "roles": ["security"]},
    {"id": "bea", "name": HOSTILE, "email": "bea@example.com", "roles": ["business"]},  # no channel ids
]


@pytest.fixture
def world(s3_service, tmp_path) -> Iterator[dict[str, Any]]:
    """Both fakes up, ``CLEARANCE_SLACK_*`` / ``CLEARANCE_JIRA_*`` / ``CLEARANCE_CONFIG_DIR`` pointing at them."""
    from clearance.settings import get_settings
    from tests.integration.promotion_kit import POLICY_HIGH

    (tmp_path / "policies").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "policies" / "high.yaml").write_text(yaml.safe_dump(POLICY_HIGH))
    (tmp_path / "principals.yaml").write_text(yaml.safe_dump({"principals": PEOPLE}))
    slack = FakeSlack(channels=(CHANNEL, MODEL_CHANNEL)).start()
    jira = FakeJira("Cloud").start()
    jira.add_user("sam", "sam-pw", account_id="acc-sam", email="sam@example.com")
    patch = pytest.MonkeyPatch()
    for name, value in slack.env(CHANNEL).items():
        patch.setenv(name, value)
    for name, value in {"URL": jira.url, "EMAIL": "bot@example.com", "API_TOKEN": "bot-password", "PROJECT": "CLR",
                        "MAX_RETRIES": "1", "BACKOFF_SECONDS": "0.05", "TIMEOUT_SECONDS": "3"}.items():
        patch.setenv(f"CLEARANCE_JIRA_{name}", value)
    patch.setenv("CLEARANCE_SLACK_MAX_RETRIES", "1")
    patch.setenv("CLEARANCE_CONFIG_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        yield {"slack": slack, "jira": jira, "model": f"m-{uuid.uuid4().hex[:10]}"}
    finally:
        patch.undo()
        get_settings.cache_clear()
        slack.stop()
        jira.stop()
    assert slack.violations == [] and jira.contract_errors == []


def pending_record(model: str, run_id: str):
    from clearance.approvals import ApprovalRecord, ApprovalRequest
    from clearance.config.schema import Channel
    from clearance.core.clock import utcnow

    now = utcnow()
    request = ApprovalRequest(run_id=run_id, model=model, version="1.0.0", tier="high", artifact_digest="ab" * 32,
                              evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                              excluded_principals=["dana"], initiator="dana", channels=[Channel.SLACK, Channel.JIRA],
                              opened_at=now - timedelta(hours=2), deadline=now + timedelta(hours=6))
    return ApprovalRecord(request=request)


def ticket(jira: FakeJira, run_id: str) -> dict[str, Any]:
    from tasks.jira_tracking import run_label

    (only,) = jira.issues_with_label(run_label(run_id))
    return only


def test_a_reminder_an_alert_and_a_superseded_close_reach_slack_and_jira(world):
    from clearance.approvals import Outcome
    from clearance.approvals.models import ReminderSent
    from clearance.core.clock import utcnow
    from clearance.core.keys import slack_state_key
    from clearance.events import PromotionEvent, event_for
    from clearance.render import jira as jira_render
    from clearance.render import slack as slack_render
    from tasks.channels import publish_event
    from tasks.wiring import object_store

    slack, jira, model = world["slack"], world["jira"], world["model"]
    run = f"run-{uuid.uuid4().hex[:8]}"
    record = pending_record(model, run)
    assert publish_event(event_for(record, "approval-requested")) == []

    # A reminder, as the sweep publishes it: the record already holds the nudge; no routing on the event.
    record.reminders.append(ReminderSent(kind="reminder", number=1, at=utcnow(), to=["sam", "bea"],
                                         missing={"security": 1, "business": 1}))
    reminder = event_for(record, "reminder", mentions=["sam", "bea"], message=f"Reminder: {HOSTILE}")
    assert publish_event(reminder) == []
    assert publish_event(reminder) == []  # a retried sweep shows it once
    state = object_store().get_json(slack_state_key(model, "1.0.0", run))
    replies = slack.thread(CHANNEL, state["parent_ts"])
    (reply,) = [r for r in replies if r["ts"] == state["reminders"]["reminder/1"]]
    shown = reply["blocks"][0]["text"]["text"]
    assert "<@U0SAM000002>" in shown and "<@U0SAM000002>" in reply["text"]
    assert slack_render.escape(HOSTILE) in shown and "<!here>" not in shown and "<script>" not in shown
    assert "Still needed: business (1), security (1)" in shown
    comments = [c["body"] for c in ticket(jira, run)["comments"] if "clearance-ref: reminder/1" in c["body"]]
    assert len(comments) == 1
    assert "[~accountid:acc-sam]" in comments[0] and jira_render.escape(HOSTILE) in comments[0]
    assert "[link|x]" not in comments[0] and "{code}" not in comments[0]

    # An alert from the expiry sweep: a top-level message in the model's channel and a ticket of its own.
    lapse = f"lapse-{uuid.uuid4().hex[:8]}"
    alert = PromotionEvent(kind="alert", action="recertification", run_id=lapse, model=model, version="1.0.0",
                           tier="high", initiator="clearance", status="lapsed", message=f"expired: {HOSTILE}",
                           notify={"slack_channel": MODEL_CHANNEL})
    assert publish_event(alert) == []
    (posted,) = [m for (channel, _), m in slack.messages.items() if channel == MODEL_CHANNEL]
    assert not posted.get("thread_ts") and f"Certification of {model} 1.0.0 lapsed" in posted["text"]
    assert "<!here>" not in json.dumps(posted["blocks"]) and slack_render.escape(HOSTILE) in json.dumps(
        posted["blocks"], ensure_ascii=False)
    lapsed = ticket(jira, lapse)
    assert lapsed["fields"]["summary"] == f"Certification of {model} 1.0.0 lapsed"
    (body,) = [c["body"] for c in lapsed["comments"] if "clearance-ref: alert/lapsed" in c["body"]]
    assert jira_render.escape(HOSTILE) in body and "{code}" not in body

    # A newer version was approved: the request closes as superseded everywhere.
    closed = record.model_copy(deep=True)
    closed.outcome, closed.closed_at = Outcome.SUPERSEDED, utcnow()
    closed.closed_by = ["superseded by 2.0.0 (run run-newer)"]
    assert publish_event(event_for(closed, "closed", status="superseded", message=closed.closed_by[0])) == []
    (approval,) = state["approvals"]
    message = slack.messages[(approval["channel"], approval["ts"])]
    assert button(message["blocks"], "clearance_approve") is None
    assert "Superseded* by 2.0.0 (run run-newer)" in json.dumps(message["blocks"])
    superseded = ticket(jira, run)
    assert superseded["fields"]["status"]["name"] == "Rejected"
    assert any("clearance-ref: superseded" in c["body"] and "2.0.0 (run run-newer)" in c["body"]
               for c in superseded["comments"])

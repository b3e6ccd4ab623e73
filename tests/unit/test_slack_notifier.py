"""The Slack notifier and its messages, against the local Slack (no Prefect, no S3: an in-memory store)."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest

from clearance.approvals import ApprovalRecord, ApprovalRequest, Decision, Outcome, Vote
from clearance.config.schema import Channel
from clearance.core.clock import utcnow
from clearance.core.keys import slack_state_key
from clearance.events import PromotionEvent
from clearance.render.slack_messages import (
    APPROVE_ACTION,
    REJECT_ACTION,
    approval_message,
    parse_button_value,
    reject_modal,
)
from clearance.settings.slack import SlackSettings
from gates.base import CheckResult, GateResult, Status
from tasks.channels import publish_event
from tasks.object_store import ObjectExists, PreconditionFailed
from tasks.slack import SlackChannelError, SlackNotifier, slack_client
from tests.fakes.slack_server import FakeSlack, _block_kit_problems, button

CHANNEL = "C0123456789"
DIGEST = "a" * 64


class MemStore:
    """The few ObjectStore operations the notifier uses, with real ETag / CAS semantics."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.n = 0

    def head(self, key):
        return self.objects.get(key, (None, None))[1]

    def get_bytes(self, key):
        return self.objects[key]

    def get_json(self, key):
        return json.loads(self.objects[key][0])

    def list_keys(self, prefix):
        return sorted(k for k in self.objects if k.startswith(prefix))

    def put_if_match(self, key, body, etag, content_type="application/json"):
        current = self.objects.get(key, (None, None))[1]
        if current != etag:
            raise PreconditionFailed(key)
        self.n += 1
        self.objects[key] = (body, f'"{self.n}"')
        return self.objects[key][1]

    def put_if_absent(self, key, body, content_type=""):
        if key in self.objects:
            raise ObjectExists(key)
        return self.put_if_match(key, body, None)


@pytest.fixture(scope="module")
def fake():
    server = FakeSlack(channels=(CHANNEL, "C0NOTMEMBER"), not_member=("C0NOTMEMBER",)).start()
    yield server
    server.stop()


def settings_for(fake: FakeSlack, **overrides) -> SlackSettings:
    values = dict(bot_token=fake.bot_token, base_url=fake.base_url, default_channel=CHANNEL, max_retries=2)
    return SlackSettings(**(values | overrides))


def make_record(run_id: str, decisions=(), outcome=Outcome.PENDING) -> ApprovalRecord:
    now = utcnow()
    request = ApprovalRequest(run_id=run_id, model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                              evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                              excluded_principals=["dana"], initiator="dana",
                              channels=[Channel.SLACK, Channel.CLI], opened_at=now, deadline=now + timedelta(hours=1))
    record = ApprovalRecord(request=request, decisions=list(decisions), outcome=outcome)
    if outcome.closed:
        record.closed_at, record.closed_by, record.closing_channel = now, [d.principal for d in decisions], Channel.CLI
    return record


def decision(who: str, role: str, vote=Vote.APPROVE, comment="") -> Decision:
    return Decision(principal=who, channel=Channel.SLACK, vote=vote, comment=comment, roles=[role],
                    artifact_digest=DIGEST, evidence_digest="e" * 64)


GATE = GateResult(gate_id="artifact_integrity", gate_version="1", status=Status.WARN, checks=[
    CheckResult(id="sha256_matches", status=Status.PASS),
    CheckResult(id="size_limit", status=Status.WARN, observed=10, threshold=5, message="big"),
    CheckResult(id="format", status=Status.WAIVED, message="pickle", waiver="legacy model, ticket ML-12"),
], metrics={"size_mb": 10.0})


def event(kind: str, run_id: str, **details) -> PromotionEvent:
    return PromotionEvent(kind=kind, run_id=run_id, model="churn", version="1.0.0", tier="high", initiator="dana",
                          artifact_digest=DIGEST, links={"prefect_run": "http://127.0.0.1:4200/runs/flow-run/x"},
                          **details)


# --------------------------------------------------------------------------- blocks


def test_approval_message_pending_then_closed():
    record = make_record("run-1", [decision("sam", "security")])
    text, blocks = approval_message(record, [GATE], eligible={"security": ["sam", "sol"], "business": ["bea"]})
    shown = json.dumps(blocks)
    assert "Sign-off needed" in text and _block_kit_problems(blocks) == []
    assert parse_button_value(button(blocks, APPROVE_ACTION)["value"]) == ("run-1", DIGEST)
    assert button(blocks, REJECT_ACTION) is not None
    assert "size_limit" in shown and "legacy model, ticket ML-12" in shown  # warnings and waivers in force
    assert "1/1 (sam)" in shown and "needs 1 more from bea" in shown  # who approved, who is still needed
    assert "<!date^" in shown and DIGEST[:16] in shown  # the deadline and the digest

    closed = make_record("run-1", [decision("sam", "security"), decision("bea", "business", Vote.REJECT, "no KPI")],
                         Outcome.REJECTED)
    _, blocks = approval_message(closed, [GATE])
    shown = json.dumps(blocks)
    assert button(blocks, APPROVE_ACTION) is None and button(blocks, REJECT_ACTION) is None
    assert "Rejected" in shown and "no KPI" in shown and "via cli" in shown


def test_reject_modal_requires_a_reason():
    view = reject_modal("run-1", DIGEST, model="churn", version="1.0.0", channel=CHANNEL, thread_ts=None)
    (field,) = [b for b in view["blocks"] if b["type"] == "input"]
    assert field.get("optional", False) is False and field["element"]["min_length"] == 1
    assert json.loads(view["private_metadata"])["run"] == "run-1"


def test_button_values_are_checked():
    for bad in ("", "[]", '{"run": 1}', "not json"):
        with pytest.raises(ValueError):
            parse_button_value(bad)


# --------------------------------------------------------------------------- the notifier


def test_a_promotion_thread_and_its_approval_message_follow_the_record(fake):
    store = MemStore()
    notifier = SlackNotifier(settings_for(fake), store, config_dir="/nonexistent")
    run = "run-thread"
    # The flow stores each gate result as evidence (tasks.evidence.publish_gate_result).
    store.put_if_absent(f"evidence/churn/1.0.0/{run}/gate-artifact_integrity.json", GATE.to_evidence_json())
    for e in [event("opened", run), event("gate", run, gate=GATE),
              event("approval-requested", run, record=make_record(run), gates=[GATE])]:
        notifier.handle(e)
    state = store.get_json(slack_state_key("churn", "1.0.0", run))
    parent = fake.messages[(CHANNEL, state["parent_ts"])]
    assert "waiting for sign-off" in parent["text"]
    replies = fake.thread(CHANNEL, state["parent_ts"])
    assert [r["ts"] for r in replies] == [state["gates"]["artifact_integrity"], state["approvals"][0]["ts"]]

    # A replayed event (a resumed run) posts nothing new.
    posted = len(fake.calls_of("chat.postMessage"))
    notifier.handle(event("gate", run, gate=GATE))
    assert len(fake.calls_of("chat.postMessage")) == posted

    # Decisions from any channel update the message in place; closing removes the buttons.
    notifier.handle(event("approvals-changed", run, record=make_record(run, [decision("sam", "security")])))
    message = fake.messages[(CHANNEL, state["approvals"][0]["ts"])]
    assert "sam" in json.dumps(message["blocks"]) and button(message["blocks"], APPROVE_ACTION)
    assert "size_limit" in json.dumps(message["blocks"])  # gate summary kept (read from the evidence)
    closed = make_record(run, [decision("sam", "security"), decision("bea", "business")], Outcome.APPROVED)
    notifier.handle(event("closed", run, record=closed))
    notifier.handle(event("promoted", run, record=closed, status="promoted", message="production/churn/1.0.0"))
    message = fake.messages[(CHANNEL, state["approvals"][0]["ts"])]
    assert button(message["blocks"], APPROVE_ACTION) is None and "Approved" in json.dumps(message["blocks"])
    assert "promoted" in fake.messages[(CHANNEL, state["parent_ts"])]["text"]
    assert fake.violations == []


def test_update_of_a_message_slack_does_not_know_fails_like_slack(fake):
    store = MemStore()
    notifier = SlackNotifier(settings_for(fake), store, config_dir="/nonexistent")
    run = "run-unknown-ts"
    store.put_if_match(slack_state_key("churn", "1.0.0", run), json.dumps(
        {"channel": CHANNEL, "parent_ts": "1700000000.999999",
         "approvals": [{"channel": CHANNEL, "ts": "1700000000.999998"}]}).encode(), None)
    with pytest.raises(SlackChannelError, match="message_not_found"):
        notifier.handle(event("approvals-changed", run, record=make_record(run)))


@pytest.mark.parametrize("channel, code", [("C0NOSUCHCH1", "channel_not_found"), ("C0NOTMEMBER", "not_in_channel")])
def test_setup_errors_are_one_clear_line_and_never_stop_the_promotion(fake, channel, code, caplog):
    notifier = SlackNotifier(settings_for(fake, default_channel=channel), MemStore(), config_dir="/nonexistent")
    with caplog.at_level(logging.WARNING, logger="clearance.channels"):
        notes = publish_event(event("opened", f"run-{code}"), [notifier])
        again = publish_event(event("gate", f"run-{code}", gate=GATE), [notifier])
    assert len(notes) == 1 and code in notes[0] and again == []
    lines = [r for r in caplog.records if code in r.getMessage()]
    assert len(lines) == 1
    assert fake.bot_token not in caplog.text


def test_invalid_token_is_reported_without_the_token(fake, caplog):
    notifier = SlackNotifier(settings_for(fake, bot_token="xoxb-wrong-token"), MemStore(), config_dir="/nonexistent")
    with caplog.at_level(logging.WARNING, logger="clearance.channels"):
        notes = publish_event(event("opened", "run-auth"), [notifier])
    assert "invalid_auth" in notes[0] and "xoxb-wrong-token" not in caplog.text + notes[0]


def test_rate_limit_waits_retry_after_then_succeeds(fake):
    client = slack_client(settings_for(fake))
    fake.inject("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    client.chat_postMessage(channel=CHANNEL, text="after a 429")
    assert time.monotonic() - started >= 1.0
    last = fake.calls_of("chat.postMessage")[-2:]
    assert [c.status for c in last] == [429, 200] and last[1].at - last[0].at >= 1.0


def test_retry_after_beyond_the_ceiling_gives_up_at_once(fake):
    notifier = SlackNotifier(settings_for(fake, max_retry_after_seconds=5), MemStore(), config_dir="/nonexistent")
    fake.inject("chat.postMessage", status=429, retry_after=120)
    before = len(fake.calls_of("chat.postMessage"))
    notes = publish_event(event("opened", "run-429-long"), [notifier])
    assert "HTTP 429" in notes[0]
    assert [c.status for c in fake.calls_of("chat.postMessage")[before:]] == [429]  # not retried after 120 s


def test_server_errors_are_retried_with_backoff_then_given_up(fake):
    notifier = SlackNotifier(settings_for(fake, max_retries=2), MemStore(), config_dir="/nonexistent")
    before = len(fake.calls_of("chat.postMessage"))
    fake.inject("chat.postMessage", status=503, times=3)
    notes = publish_event(event("opened", "run-5xx"), [notifier])
    calls = fake.calls_of("chat.postMessage")[before:]
    assert [c.status for c in calls] == [503, 503, 503] and "HTTP 503" in notes[0]
    assert calls[2].at - calls[0].at >= 0.4  # backed off between attempts
    fake.inject("chat.postMessage", status=500, times=1)  # a single 5xx is absorbed by a retry
    assert publish_event(event("opened", "run-5xx-once"), [notifier]) == []


def test_notifier_is_off_without_token_and_posts_only_where_a_channel_is_named(monkeypatch):
    from clearance.settings import Settings
    from tasks.slack import slack_notifier

    for name in ("BOT_TOKEN", "DEFAULT_CHANNEL", "TIER_CHANNELS", "MODEL_CHANNELS"):
        monkeypatch.delenv(f"CLEARANCE_SLACK_{name}", raising=False)
    assert slack_notifier(Settings()) is None
    monkeypatch.setenv("CLEARANCE_SLACK_BOT_TOKEN", "xoxb-1")
    notifier = slack_notifier(Settings())  # the channel may come from the configs (notify.slack_channel)
    assert notifier is not None
    notifier.handle(event("opened", "r-nowhere"))  # no channel anywhere: nothing posted, nothing raised
    assert SlackSettings().channel_for("churn", "high") is None
    monkeypatch.setenv("CLEARANCE_SLACK_TIER_CHANNELS", '{"high": "C0HIGH00001"}')
    settings = SlackSettings()
    assert settings.channel_for("churn", "high") == "C0HIGH00001" and settings.channel_for("x", "low") is None
    assert "xoxb-1" not in repr(settings)


def test_the_configs_name_the_channel_of_a_promotion_thread():
    """notify.slack_channel (policy or manifest, carried by the flow's events) wins over the settings."""
    from clearance.config.schema import Notify

    routed = "C0ROUTED001"
    slack = FakeSlack(channels=(CHANNEL, routed)).start()
    try:
        store = MemStore()
        notifier = SlackNotifier(settings_for(slack), store)
        notifier.handle(event("opened", "r-routed", notify=Notify(slack_channel=routed)))
        notifier.handle(event("gate", "r-routed", gate=GateResult.from_checks("g", "1", [
            CheckResult(id="c", status=Status.PASS)])))
        posted = [c.params.get("channel") for c in slack.calls_of("chat.postMessage")]
        assert posted and set(posted) == {routed}
        assert json.loads(store.objects[slack_state_key("churn", "1.0.0", "r-routed")][0])["channel"] == routed
        assert slack.violations == []
    finally:
        slack.stop()

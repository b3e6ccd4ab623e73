"""The local Slack enforces the published contract: the fake itself must be able to say no."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_server import SPEC_PATH, FakeSlack

CHANNEL = "C0123456789"
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "slack_web_openapi_v2.json"


@pytest.fixture
def fake():
    server = FakeSlack(channels=(CHANNEL,), users={"U0SAM000002": "sam@example.com"}).start()
    yield server
    server.stop()


def client(fake, token=None):
    return WebClient(token=token or fake.bot_token, base_url=fake.base_url, retry_handlers=[])


def test_requests_outside_the_spec_are_violations(fake):
    web = client(fake)
    with pytest.raises(SlackApiError):
        web.api_call("chat.postMessage", json={"channel": CHANNEL, "text": "x", "colour": "red"})
    with pytest.raises(SlackApiError):
        web.api_call("chat.update", json={"channel": CHANNEL, "text": "no ts"})
    with pytest.raises(SlackApiError):
        web.chat_postMessage(channel=CHANNEL, text="x", blocks=[{"text": "a block without a type"}])
    with pytest.raises(SlackApiError):
        web.chat_postMessage(channel=CHANNEL, text="x", blocks=[{"type": "header", "text": {"type": "plain_text",
                                                                                            "text": "h" * 151}}])
    assert len(fake.violations) == 4
    assert any("colour" in v for v in fake.violations) and any("'ts' is a required" in v for v in fake.violations)


def test_responses_are_validated_against_the_spec(fake, monkeypatch):
    monkeypatch.setattr(fake, "_next_ts", lambda: "not-a-slack-ts")
    client(fake).chat_postMessage(channel=CHANNEL, text="x")
    assert any("chat.postMessage response" in v and "does not match" in v for v in fake.violations)


def test_tokens_channels_and_timestamps_are_checked_like_slack(fake):
    with pytest.raises(SlackApiError, match="invalid_auth"):
        client(fake, "xoxb-wrong").chat_postMessage(channel=CHANNEL, text="x")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client(fake).chat_postMessage(channel="C0NOWHERE01", text="x")
    posted = client(fake).chat_postMessage(channel=CHANNEL, text="x")
    with pytest.raises(SlackApiError, match="message_not_found"):
        client(fake).chat_update(channel=CHANNEL, ts="1700000000.000001", text="y")
    assert client(fake).chat_update(channel=CHANNEL, ts=posted["ts"], text="y")["ok"]
    with pytest.raises(SlackApiError, match="invalid_trigger_id"):
        client(fake).views_open(trigger_id="123.456.made-up", view={"type": "modal", "blocks": []})
    with pytest.raises(SlackApiError, match="user_not_found"):
        client(fake).users_info(user="U0NOBODY999")
    assert client(fake).users_info(user="U0SAM000002")["user"]["profile"]["email"] == "sam@example.com"
    assert fake.violations == []


def test_the_committed_spec_subset_is_current():
    subset = json.loads(SPEC_PATH.read_text())
    assert {"/chat.postMessage", "/chat.update", "/chat.postEphemeral", "/views.open", "/users.info"} <= set(
        subset["paths"])
    if not SHARED_SPEC.exists():
        pytest.skip("../shared/specs is not beside this clone; the committed subset is used as is")
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_spec_subsets", Path(__file__).resolve().parents[2]
                                                  / "scripts" / "make_spec_subsets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.slack_subset(SHARED_SPEC) == subset, "rerun: python scripts/make_spec_subsets.py slack"

"""Slack secrets from Prefect Secret blocks on the real Prefect server."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_unset_tokens_come_from_secret_blocks_and_env_wins(prefect_service, monkeypatch):
    from prefect.blocks.system import Secret

    from tasks.secret_blocks import load_slack_settings

    prefix = f"t{uuid.uuid4().hex[:8]}-slack"
    Secret(value="xoxb-from-block").save(f"{prefix}-bot-token")
    Secret(value="signing-from-block").save(f"{prefix}-signing-secret")
    monkeypatch.setenv("CLEARANCE_SLACK_SECRET_BLOCK_PREFIX", prefix)
    monkeypatch.delenv("CLEARANCE_SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("CLEARANCE_SLACK_SIGNING_SECRET", "signing-from-env")
    monkeypatch.delenv("CLEARANCE_SLACK_APP_TOKEN", raising=False)

    settings = load_slack_settings()
    assert settings.bot_token.get_secret_value() == "xoxb-from-block"
    assert settings.signing_secret.get_secret_value() == "signing-from-env"  # the environment wins
    assert settings.app_token is None  # no such block: stays unset
    assert "xoxb-from-block" not in repr(settings)


def test_without_prefix_no_block_is_read(prefect_service, monkeypatch):
    from tasks.secret_blocks import load_slack_settings

    monkeypatch.delenv("CLEARANCE_SLACK_SECRET_BLOCK_PREFIX", raising=False)
    monkeypatch.delenv("CLEARANCE_SLACK_BOT_TOKEN", raising=False)
    assert load_slack_settings().bot_token is None

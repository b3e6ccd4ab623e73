"""Slack settings, read from the environment (``CLEARANCE_SLACK_*``) or a ``.env`` file.

Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr``, logs or artifacts.
The Slack channel stays off until a bot token and at least one channel are set.

==================================  =================================================================
``CLEARANCE_SLACK_BOT_TOKEN``       ``xoxb-…`` bot token (chat:write, users:read, users:read.email)
``CLEARANCE_SLACK_SIGNING_SECRET``  the app's signing secret (checks ``/slack/interactions``)
``CLEARANCE_SLACK_APP_TOKEN``       ``xapp-…`` app-level token (connections:write), Socket Mode only
``CLEARANCE_SLACK_DEFAULT_CHANNEL`` channel id for promotions of models/tiers not listed below
``CLEARANCE_SLACK_TIER_CHANNELS``   JSON: ``{"high": "C0123456789"}``
``CLEARANCE_SLACK_MODEL_CHANNELS``  JSON: ``{"churn-classifier": "C0123456789"}`` (wins over tier)
``CLEARANCE_SLACK_BASE_URL``        Web API base URL (default Slack's; tests point it at a fake)
``CLEARANCE_SLACK_SECRET_BLOCK_PREFIX`` e.g. ``clearance-slack``: unset tokens come from Prefect Secret
                                    blocks ``clearance-slack-bot-token``, ``-signing-secret``, ``-app-token``
                                    (read by :func:`tasks.secret_blocks.load_slack_settings`)
``CLEARANCE_SLACK_TEAM_ID``         the workspace id (``T…``) of the approvers: clicks from any other workspace
                                    (Slack Connect) are refused and recorded; needed for *verified* decisions
``CLEARANCE_SLACK_EMAIL_FALLBACK``  ``true``: a member of ``TEAM_ID`` who is nobody's ``slack_id`` may be matched
                                    by the confirmed e-mail of ``users.info`` (a *claimed* identity); default off
==================================  =================================================================
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_API_URL = "https://slack.com/api/"


class SlackSettings(BaseSettings):
    """Where clearance talks to Slack, with which credentials, and in which channels."""

    model_config = SettingsConfigDict(env_prefix="CLEARANCE_SLACK_", env_file=".env", extra="ignore")

    bot_token: SecretStr | None = Field(None, description="Bot token (xoxb-…).")
    signing_secret: SecretStr | None = Field(None, description="Signing secret of the Slack app.")
    app_token: SecretStr | None = Field(None, description="App-level token (xapp-…) for Socket Mode.")
    default_channel: str | None = Field(None, description="Channel id used when no tier/model channel matches.")
    tier_channels: dict[str, str] = Field(default_factory=dict, description="Risk tier → channel id.")
    model_channels: dict[str, str] = Field(default_factory=dict, description="Model name → channel id.")
    base_url: str = Field(SLACK_API_URL, description="Slack Web API base URL.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout of Web API calls.")
    max_retries: int = Field(3, ge=0, description="Retries of one Web API call on 429 / 5xx / connection errors.")
    max_retry_after_seconds: float = Field(
        30.0, gt=0, description="Longest Retry-After (429) honoured; longer waits give up on that call.")
    signature_max_age_seconds: int = Field(300, gt=0, description="Replay window of signed requests.")
    secret_block_prefix: str | None = Field(
        None, description="Read unset tokens from Prefect Secret blocks "
                          "<prefix>-bot-token, <prefix>-signing-secret, <prefix>-app-token.")
    team_id: str | None = Field(
        None, pattern=r"^[A-Z][A-Z0-9]{2,}$",
        description="The approvers' workspace id (T…). Interactions from any other workspace (Slack Connect) are "
                    "refused and recorded; a click from a principal's pinned slack_id is verified only when this is "
                    "set.")
    email_fallback: bool = Field(
        False, description="Match a member of team_id who is nobody's slack_id by the confirmed e-mail users.info "
                           "gives (claimed; needs team_id; never for a principal who has a slack_id).")

    @property
    def enabled(self) -> bool:
        """Whether the notifier can post (a bot token; the channel comes from the configs' ``notify`` or these
        settings, and a promotion with neither is not posted)."""
        return self.bot_token is not None

    def channel_for(self, model: str, tier: str) -> str | None:
        """The channel of a promotion: the model's, else its tier's, else the default."""
        return self.model_channels.get(model) or self.tier_channels.get(tier) or self.default_channel

"""Jira settings, read from the environment (``CLEARANCE_JIRA_*``) or a ``.env`` file.

Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr``, logs or artifacts.
The Jira channel stays off until a URL, a project key and some credentials are set.

======================================  ==============================================================
``CLEARANCE_JIRA_URL``                  base URL, e.g. ``https://acme.atlassian.net``
``CLEARANCE_JIRA_EMAIL``                with ``API_TOKEN``: Jira Cloud (basic auth email + API token)
``CLEARANCE_JIRA_API_TOKEN``            Jira Cloud API token
``CLEARANCE_JIRA_PAT``                  Server/Data Center personal access token (Bearer)
``CLEARANCE_JIRA_USERNAME``             with ``PASSWORD``: plain basic auth (Server/DC)
``CLEARANCE_JIRA_PASSWORD``             basic-auth password
``CLEARANCE_JIRA_PROJECT``              project key of promotion tickets, e.g. ``MLOPS``
``CLEARANCE_JIRA_ISSUE_TYPE``           issue type name (default ``Task``)
``CLEARANCE_JIRA_LABELS``               JSON list of labels added to every ticket (default ``["clearance"]``)
``CLEARANCE_JIRA_EXTRA_FIELDS``         JSON object of extra fields, e.g. ``{"customfield_10010": "ML"}``
``CLEARANCE_JIRA_TRANSITIONS``          JSON object pipeline state → transition name (see below)
``CLEARANCE_JIRA_APPROVAL_STATUS``      status whose entry by a person counts as an approval
``CLEARANCE_JIRA_REJECTION_STATUS``     status whose entry by a person counts as a rejection
``CLEARANCE_JIRA_WEBHOOK_SECRET``       secret of the Cloud admin webhook (``X-Hub-Signature``)
``CLEARANCE_JIRA_REPLAY_WINDOW_SECONDS`` signed webhooks whose ``timestamp`` is further than this from now are
                                        refused (default 300)
``CLEARANCE_JIRA_EMAIL_FALLBACK``       ``true``: a person whose account is no pinned ``jira_account_id`` may be
                                        matched by e-mail (a *claimed* identity); default off
``CLEARANCE_JIRA_POLL_SECONDS``         interval of ``python -m clearance.app.jira_poller``
``CLEARANCE_JIRA_DEPLOYMENT``           ``auto`` (from ``serverInfo``), ``cloud`` or ``server``
======================================  ==============================================================
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The pipeline states a ticket follows, in order of a successful promotion.
PIPELINE_STATES = ("gates_running", "awaiting_approval", "approved", "promoted", "rejected", "failed")

DEFAULT_TRANSITIONS = {
    "gates_running": "Run gates",
    "awaiting_approval": "Request approval",
    "approved": "Approve",
    "promoted": "Promote",
    "rejected": "Reject",
    "failed": "Fail",
}


class JiraSettings(BaseSettings):
    """Where clearance talks to Jira, as whom, and how the workflow maps onto the pipeline."""

    model_config = SettingsConfigDict(env_prefix="CLEARANCE_JIRA_", env_file=".env", extra="ignore")

    url: str | None = Field(None, description="Jira base URL (Cloud site or Server/DC context path).")
    email: str | None = Field(None, description="Account e-mail for Cloud API-token auth.")
    api_token: SecretStr | None = Field(None, description="Cloud API token (used with email).")
    pat: SecretStr | None = Field(None, description="Server/DC personal access token (Bearer auth).")
    username: str | None = Field(None, description="Basic-auth user name.")
    password: SecretStr | None = Field(None, description="Basic-auth password.")
    project: str | None = Field(None, description="Project key of the promotion tickets.")
    issue_type: str = Field("Task", description="Issue type name of promotion tickets.")
    labels: list[str] = Field(default_factory=lambda: ["clearance"], description="Labels on every ticket.")
    extra_fields: dict[str, Any] = Field(default_factory=dict, description="More fields set on creation.")
    transitions: dict[str, str] = Field(default_factory=dict,
                                        description="Pipeline state → transition name (merged over defaults).")
    duplicate_transition: str | None = Field(
        None, description="Transition that closes a duplicate ticket of a run (e.g. 'Close as duplicate'); "
                          "unset: a duplicate is relabelled and commented only.")
    approval_status: str = Field("Approved", description="Entering this status counts as an approval.")
    rejection_status: str = Field("Rejected", description="Entering this status counts as a rejection.")
    webhook_secret: SecretStr | None = Field(None, description="Secret of the signed Cloud admin webhook.")
    replay_window_seconds: int = Field(
        300, gt=0, description="A signed webhook whose timestamp is further than this from now is refused (replay).")
    email_fallback: bool = Field(
        False, description="Match a person who is no pinned jira_account_id by the e-mail Jira shows (claimed; "
                           "never for a principal who has a jira_account_id).")
    poll_seconds: float = Field(60.0, gt=0, description="Polling interval of the JQL poller.")
    poll_window: str = Field("-2d", pattern=r"^-\d+[mhdw]$",
                             description="JQL 'updated >=' window the poller looks back over (-30m, -12h, -2d, -1w).")
    deployment: Literal["auto", "cloud", "server"] = Field("auto", description="Override serverInfo detection.")
    timeout_seconds: float = Field(10.0, gt=0, description="Connect/read timeout of one REST call.")
    max_retries: int = Field(3, ge=0, description="Retries of one call on 5xx / 429 / timeouts.")
    backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles per retry.")
    max_retry_after_seconds: float = Field(30.0, gt=0, description="Longest Retry-After honoured per retry.")

    @property
    def enabled(self) -> bool:
        """Whether tickets can be written (URL and credentials; the project comes from the configs'
        ``notify.jira_project`` or ``CLEARANCE_JIRA_PROJECT``)."""
        return bool(self.url and self.auth_kind)

    @property
    def auth_kind(self) -> str | None:
        """``api-token``, ``pat``, ``basic`` or ``None`` (never the secret itself)."""
        if self.email and self.api_token:
            return "api-token"
        if self.pat:
            return "pat"
        if self.username and self.password:
            return "basic"
        return None

    def transition_for(self, state: str) -> str:
        """The transition name that moves a ticket into ``state``."""
        return {**DEFAULT_TRANSITIONS, **self.transitions}[state]

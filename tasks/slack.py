"""Slack as a channel: a thread per promotion, gate replies, and an approval message kept up to date.

Registered with :func:`tasks.channels.register_notifier`; active when ``CLEARANCE_SLACK_BOT_TOKEN``
and a channel are set (see :mod:`clearance.settings.slack`). Slack is never the truth:
every failure raises a clear error that :func:`tasks.channels.publish_event` turns into a
log line and a Prefect artifact note, and the promotion goes on.

Where the messages are: ``evidence/<model>/<version>/<run>/slack.json`` (channel, parent ts,
gate reply ts, approval message ts, reminder and alert ts), written with compare-and-swap, so the
flow (which posts) and ``clearance serve`` / the CLI / the deadline sweep (which update after a
decision or remind people) share the same messages.

Lifecycle events: ``reminder`` / ``escalated`` are replies in the run's thread mentioning the
people still needed (``<@U…>`` when ``principals.yaml`` knows their Slack id), once per reminder
(``event.status`` = ``reminder-<n>`` / ``escalation-<n>``, else the newest nudge in the record); an
``alert`` is a top-level message in the model's channel, once per run and status; a request closed as
``superseded`` loses its buttons. Events from outside the flow find the run's channel in ``slack.json``.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from clearance.approvals import ApprovalRecord
from clearance.config.schema import Principals
from clearance.core.clock import utcnow
from clearance.core.keys import slack_state_key
from clearance.events import PromotionEvent
from clearance.render.lifecycle import alert_ref, is_superseded, nudge, superseded_by
from clearance.render.slack_messages import (
    alert_message,
    approval_message,
    gate_reply,
    outcome_reply,
    parent_message,
    reminder_reply,
)
from clearance.settings import Settings, SlackSettings
from gates.base import GateResult
from tasks.channels import register_notifier
from tasks.evidence import stored_gate_results
from tasks.secret_blocks import get_slack_settings, load_slack_settings
from tasks.store import PreconditionFailed, Store, read_json_state, update_json_state
from tasks.wiring import config_set, object_store, principals_for_mentions

log = logging.getLogger("clearance.slack")

#: Errors that no retry fixes: the workspace/app/channel setup is wrong.
CONFIG_ERRORS = {"channel_not_found", "not_in_channel", "invalid_auth", "not_authed", "account_inactive",
                 "token_revoked", "missing_scope", "is_archived", "no_permission", "ekm_access_denied"}
_HINTS = {
    "channel_not_found": "check the channel id in CLEARANCE_SLACK_*_CHANNEL(S) and that the app can see it",
    "not_in_channel": "invite the app to the channel (/invite @clearance)",
    "invalid_auth": "CLEARANCE_SLACK_BOT_TOKEN is not a valid bot token for this workspace",
    "not_authed": "no bot token was sent: set CLEARANCE_SLACK_BOT_TOKEN",
    "token_revoked": "the bot token was revoked: reinstall the app and update CLEARANCE_SLACK_BOT_TOKEN",
    "missing_scope": "the app lacks a scope: reinstall it from deploy/slack-app-manifest.yaml",
    "is_archived": "the channel is archived: configure another one",
}


class SlackChannelError(RuntimeError):
    """Slack could not be updated; the message says why and what to do (never a token)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- client and retries


class _RateLimitHandler(RetryHandler):
    """429: wait exactly what Retry-After says (plus a little jitter), up to a ceiling, then give up."""

    def __init__(self, max_retry_count: int, max_wait: float, sleep: Callable[[float], None] = time.sleep):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait
        self.sleep = sleep

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code == 429 and _retry_after(response) <= self.max_wait

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        state.next_attempt_requested = True
        self.sleep(_retry_after(response) + random.uniform(0, 0.05))
        state.increment_current_attempt()


def _retry_after(response: HttpResponse | None) -> float:
    for name, values in (response.headers if response else {}).items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) else values
            try:
                return max(0.0, float(value))
            except ValueError:
                return 1.0
    return 1.0


class _TransientHandler(RetryHandler):
    """5xx answers, timeouts and dropped connections: retry with exponential backoff."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if response is not None and response.status_code >= 500:
            return True
        if error is not None and response is None:
            return isinstance(error, (URLError, ConnectionError, RemoteDisconnected, TimeoutError, socket.timeout))
        return False


def slack_client(settings: SlackSettings | None = None, *, token: str | None = None) -> WebClient:
    """A WebClient on the configured base URL, with 429 / 5xx / timeout retries bounded by the settings."""
    from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

    settings = settings or get_slack_settings()
    if token is None and settings.bot_token is not None:
        token = settings.bot_token.get_secret_value()
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return WebClient(
        token=token, base_url=settings.base_url, timeout=max(1, round(settings.timeout_seconds)),
        retry_handlers=[
            _RateLimitHandler(settings.max_retries, settings.max_retry_after_seconds),
            _TransientHandler(max_retry_count=settings.max_retries, interval_calculator=backoff),
        ],
    )


def call(client: WebClient, method: str, **kwargs: Any) -> dict[str, Any]:
    """One Web API call (``client.<method>(**kwargs)``); failures become :class:`SlackChannelError`."""
    try:
        return getattr(client, method)(**kwargs).data
    except SlackApiError as exc:
        status = exc.response.status_code
        code = exc.response.data.get("error") if isinstance(exc.response.data, dict) else None
        if code in CONFIG_ERRORS:
            hint = _HINTS.get(code, "check the Slack app setup (docs/slack.md)")
            raise SlackChannelError(f"Slack {method} failed: {code} — {hint}", code) from None
        if status >= 500 or status == 429:
            raise SlackChannelError(f"Slack {method} failed: HTTP {status} (gave up after retries)",
                                    code or f"http_{status}") from None
        raise SlackChannelError(f"Slack {method} failed: {code or f'HTTP {status}'}", code) from None
    except (URLError, OSError) as exc:
        raise SlackChannelError(f"Slack {method} failed: {type(exc).__name__}: {exc} (gave up after retries)") from None


# --------------------------------------------------------------------------- where the messages are


def read_state(store: Store, key: str) -> tuple[dict[str, Any], str | None]:
    """The run's Slack state and its ETag (``({}, None)`` before the first message)."""
    return read_json_state(store, key)


def update_state(store: Store, key: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to the state with compare-and-swap (re-read and re-applied on a lost race)."""
    try:
        return update_json_state(store, key, change)
    except PreconditionFailed as exc:
        raise SlackChannelError(f"could not record Slack message ids in {key}: too many concurrent writers") from exc


# --------------------------------------------------------------------------- the notifier

#: Event kinds about a run's existing thread, published from outside the flow (no ``notify`` routing).
_THREAD_UPDATES = frozenset({"approvals-changed", "closed", "reminder", "escalated", "promoted", "stopped"})
#: (channel, error) already reported by this process: a broken setup is one log line, not one per event.
_REPORTED: set[tuple[str, str]] = set()


class SlackNotifier:
    """Shows promotion events in Slack and keeps every approval message in step with the record."""

    name = "slack"

    def __init__(self, settings: SlackSettings, store: Store, client: WebClient | None = None,
                 config_dir: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.client = client or slack_client(settings)
        self.config_dir = config_dir

    def handle(self, event: PromotionEvent) -> None:
        """Post or update what ``event`` changes; raises :class:`SlackChannelError` when Slack fails."""
        channel = event.notify.slack_channel or self.settings.channel_for(event.model, event.tier)
        key = slack_state_key(event.model, event.version, event.run_id)
        if channel is None and event.kind in _THREAD_UPDATES:
            # Events from outside the flow (a decision, the reminder sweep) carry no routing: the run's thread
            # says where it is.
            channel = read_state(self.store, key)[0].get("channel")
        if channel is None:
            return
        try:
            self._handle(event, key, channel)
        except SlackChannelError as exc:
            if exc.code in CONFIG_ERRORS:
                if (channel, exc.code) in _REPORTED:
                    return  # already said once by this process: a broken setup is one line, not one per event
                _REPORTED.add((channel, exc.code))
            raise

    def _handle(self, event: PromotionEvent, key: str, channel: str) -> None:
        kind = event.kind
        if kind == "opened":
            self._parent(event, key, channel)
        elif kind == "gate" and event.gate is not None:
            state = self._parent(event, key, channel)
            if event.gate.gate_id in state.get("gates", {}):
                return  # a resumed run re-announces nothing
            gate_id = event.gate.gate_id
            text, blocks = gate_reply(event.gate)
            ts = self._post(state["channel"], text, blocks, thread_ts=state["parent_ts"])
            update_state(self.store, key, lambda s: s.setdefault("gates", {}).__setitem__(gate_id, ts))
        elif kind == "approval-requested" and event.record is not None:
            state = self._parent(event, key, channel)
            if state.get("approvals"):
                self._update_approvals(event, key)
                return
            text, blocks = self._approval(event, event.record)
            ts = self._post(state["channel"], text, blocks, thread_ts=state["parent_ts"], reply_broadcast=True)
            update_state(self.store, key, lambda s: s.setdefault("approvals", []).append(
                {"channel": state["channel"], "ts": ts}))
            self._update_parent(event, key, "waiting for sign-off")
        elif kind in ("approvals-changed", "closed") and event.record is not None:
            self._update_approvals(event, key)
            # A decider's channel publishes after waking the run, so the run may have posted its outcome first:
            # the parent line never goes back from "promoted" (or "stopped") to "sign-off approved".
            if is_superseded(event.record):
                self._update_parent(event, key, f"sign-off superseded by {superseded_by(event.record)}",
                                    unless_final=True)
            elif event.record.outcome.closed:
                self._update_parent(event, key, f"sign-off {event.record.outcome.value}", unless_final=True)
        elif kind in ("reminder", "escalated"):
            self._remind(event, key, channel)
        elif kind == "alert":
            self._alert(event, key, channel)
        elif kind in ("promoted", "stopped"):
            state, _ = read_state(self.store, key)
            if not state.get("parent_ts"):
                state = self._parent(event, key, channel)
            if event.record is not None and state.get("approvals"):
                self._update_approvals(event, key)
            if state.get("final") != kind:
                text, blocks = outcome_reply(kind, event.status or kind, event.message)
                self._post(state["channel"], text, blocks, thread_ts=state["parent_ts"])
                update_state(self.store, key, lambda s: s.__setitem__("final", kind))
            self._update_parent(event, key, f"{event.status or kind}" + (f": {event.message}" if event.message else ""))

    # ----------------------------------------------------------------- lifecycle

    def _remind(self, event: PromotionEvent, key: str, channel: str) -> None:
        """A reply in the run's thread mentioning the people still needed (once per reminder number)."""
        item = nudge(event, self._principals() if event.mentions else None, utcnow())
        state = self._parent(event, key, channel)
        if item.ref in state.get("reminders", {}):
            return  # this reminder was already posted (a retried sweep)
        text, blocks = reminder_reply(item)
        ts = self._post(state["channel"], text, blocks, thread_ts=state["parent_ts"])
        update_state(self.store, key, lambda s: s.setdefault("reminders", {}).__setitem__(item.ref, ts))

    def _alert(self, event: PromotionEvent, key: str, channel: str) -> None:
        """A top-level message in the model's channel (once per run and status)."""
        ref = alert_ref(event)
        state, _ = read_state(self.store, key)
        if ref in state.get("alerts", {}):
            return
        text, blocks = alert_message(event)
        data = call(self.client, "chat_postMessage", channel=channel, text=text, blocks=blocks)
        posted = {"channel": data.get("channel", channel), "ts": data["ts"]}
        update_state(self.store, key, lambda s: s.setdefault("alerts", {}).__setitem__(ref, posted))

    def _principals(self) -> Principals | None:
        """The configured principals (to mention people); ``None``: names are shown as text."""
        return principals_for_mentions(self.config_dir, "Slack")

    # ----------------------------------------------------------------- pieces

    def _post(self, channel: str, text: str, blocks: list[dict[str, Any]], **extra: Any) -> str:
        data = call(self.client, "chat_postMessage", channel=channel, text=text, blocks=blocks, **extra)
        return data["ts"]

    def _parent(self, event: PromotionEvent, key: str, channel: str) -> dict[str, Any]:
        state, _ = read_state(self.store, key)
        if state.get("parent_ts"):
            return state
        text, blocks = parent_message(model=event.model, version=event.version, tier=event.tier,
                                      initiator=event.initiator, links=event.links, action=event.action)
        data = call(self.client, "chat_postMessage", channel=channel, text=text, blocks=blocks)
        posted = {"channel": data.get("channel", channel), "parent_ts": data["ts"],
                  "links": event.links, "initiator": event.initiator, "action": event.action}

        def keep_first(s: dict[str, Any]) -> None:
            if not s.get("parent_ts"):
                s.update(posted)

        return update_state(self.store, key, keep_first)

    def _update_parent(self, event: PromotionEvent, key: str, status: str, unless_final: bool = False) -> None:
        state, _ = read_state(self.store, key)
        if not state.get("parent_ts") or (unless_final and state.get("final")):
            return
        text, blocks = parent_message(model=event.model, version=event.version, tier=event.tier,
                                      initiator=state.get("initiator", event.initiator),
                                      links=state.get("links") or event.links, status=status,
                                      action=state.get("action", event.action))
        call(self.client, "chat_update", channel=state["channel"], ts=state["parent_ts"], text=text, blocks=blocks)

    def _update_approvals(self, event: PromotionEvent, key: str) -> None:
        """Every message that offered this decision shows the record as it is now (buttons gone once closed)."""
        state, _ = read_state(self.store, key)
        if not state.get("approvals") or event.record is None:
            return
        record = self._current_record(event.record)
        text, blocks = self._approval(event, record, links=state.get("links"))
        problems = []
        for message in state["approvals"]:
            try:
                call(self.client, "chat_update", channel=message["channel"], ts=message["ts"], text=text,
                     blocks=blocks)
            except SlackChannelError as exc:
                problems.append(str(exc))
        if problems:
            raise SlackChannelError("; ".join(problems))

    def _current_record(self, record: ApprovalRecord) -> ApprovalRecord:
        """The stored record when it is newer (two updates racing must not show an older tally last)."""
        from clearance.core.keys import approvals_key
        from tasks.approvals_record import read_record

        try:
            stored = read_record(self.store, approvals_key(record.request.model, record.request.version,
                                                        record.request.run_id))[0]
        except Exception:  # noqa: BLE001 — the event's own record is good enough to show
            return record
        newer = (len(stored.decisions), stored.outcome.closed) >= (len(record.decisions), record.outcome.closed)
        return stored if newer else record

    def _approval(self, event: PromotionEvent, record: ApprovalRecord, links: dict[str, str] | None = None
                  ) -> tuple[str, list[dict[str, Any]]]:
        gates = event.gates or self._stored_gates(event)
        return approval_message(record, gates, links=links or event.links, eligible=self._eligible(record))

    def _stored_gates(self, event: PromotionEvent) -> list[GateResult]:
        try:
            return stored_gate_results(self.store, event.model, event.version, event.run_id)
        except Exception:  # noqa: BLE001 — the summary shows what it can
            return []

    def _eligible(self, record: ApprovalRecord) -> dict[str, list[str]]:
        try:
            from clearance.approvals.request import eligible_approvers
            principals = config_set(self.config_dir).principals
            return eligible_approvers(record.request, principals)
        except Exception:  # noqa: BLE001 — names are a courtesy; the counts are always shown
            return {}


@register_notifier
def slack_notifier(settings: Settings) -> SlackNotifier | None:
    """The Slack notifier when a bot token and a channel are configured, else ``None``."""
    slack = load_slack_settings()  # not cached: the environment is the switch, read at each event
    if not slack.enabled:
        return None
    return SlackNotifier(slack, object_store(settings), config_dir=settings.config_dir)

"""What a Slack interaction means, whichever way it arrived (HTTP or Socket Mode).

:meth:`SlackInteractions.ack` is the fast part (no I/O): it answers Slack at once and returns
the slow part as a callable, run after the acknowledgement. The slow part maps the Slack user
to a principal, then goes through :func:`tasks.approval_intake.receive_decision` — the
same authorisation, recording and wake-up as every other channel — and answers the clicker
with an ephemeral message (counted, or refused and why).

Signature checking is not here: it belongs to the transport (HTTP checks the v0 signature;
Socket Mode is authenticated by the app-level token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from clearance.settings.slack import SlackSettings

log = logging.getLogger("clearance.slack.interactions")

Work = Callable[[], None]


def verify_signature(secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float,
                     max_age: int = 300) -> str | None:
    """Slack's v0 request signature; ``None`` when valid, else why not (never echoes the body).

    ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` with the signing secret; the
    timestamp must be an integer within ``max_age`` seconds of ``now`` (either side).
    """
    import hashlib
    import hmac

    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "non-numeric timestamp"
    if abs(now - int(timestamp)) > max_age:
        return f"timestamp outside the {max_age} s window"
    if not signature.startswith("v0="):
        return "unsupported signature version"
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body,
                                hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return "signature mismatch"
    return None


class SlackInteractions:
    """Turns Slack interaction payloads into decisions through the shared approval intake."""

    def __init__(self, settings: SlackSettings, *, store: Any = None, principals: Any = None,
                 client: Any = None) -> None:
        self.settings = settings
        self._store = store
        self._principals = principals
        self._client = client

    # ----------------------------------------------------------------- lazily built collaborators

    @property
    def store(self):
        if self._store is None:
            from tasks.wiring import object_store

            self._store = object_store()
        return self._store

    @property
    def client(self):
        if self._client is None:
            from tasks.slack import slack_client

            self._client = slack_client(self.settings)
        return self._client

    def principals(self):
        """principals.yaml as it is now (edits apply without a restart; re-parsed only when changed)."""
        if self._principals is not None:
            return self._principals
        from tasks.wiring import config_set

        return config_set().principals

    # ----------------------------------------------------------------- the fast part

    def ack(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, Work | None]:
        """The immediate answer to Slack (``None`` = empty 200) and the work to do afterwards."""
        from clearance.render.slack_messages import (
            APPROVE_ACTION,
            REASON_BLOCK,
            REASON_INPUT,
            REJECT_ACTION,
            REJECT_MODAL,
        )

        kind = payload.get("type")
        if kind == "block_actions":
            for action in payload.get("actions") or []:
                action_id = action.get("action_id")
                if action_id == APPROVE_ACTION:
                    return None, lambda a=action: self.decide_from_button(payload, a, "approve")
                if action_id == REJECT_ACTION:
                    return None, lambda a=action: self.open_reject_modal(payload, a)
            return None, None
        if kind == "view_submission" and (payload.get("view") or {}).get("callback_id") == REJECT_MODAL:
            values = payload["view"].get("state", {}).get("values", {})
            reason = ((values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}).get("value") or ""
            if not reason.strip():
                return {"response_action": "errors", "errors": {REASON_BLOCK: "Say why you reject."}}, None
            return None, lambda: self.decide_from_modal(payload, reason.strip())
        return None, None

    # ----------------------------------------------------------------- the slow part

    def principal_for(self, user_id: str):
        """The principal of a Slack user: by Slack id, else by the e-mail ``users.info`` gives."""
        principals = self.principals()
        found = principals.by_slack_id(user_id)
        if found is not None:
            return found
        try:
            from tasks.slack import call

            profile = call(self.client, "users_info", user=user_id).get("user", {}).get("profile", {})
        except Exception as exc:  # noqa: BLE001 — unknown person: refused, not crashed
            log.info("users.info for %s failed: %s", user_id, exc)
            return None
        email = profile.get("email")
        return principals.by_email(email) if email else None

    def decide_from_button(self, payload: dict[str, Any], action: dict[str, Any], vote: str) -> None:
        """An Approve click: record it (or its refusal) and tell the clicker."""
        from clearance.render.slack_messages import parse_button_value

        user = payload.get("user") or {}
        channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
        message = payload.get("message") or {}
        thread_ts = message.get("thread_ts")
        try:
            run_id, digest = parse_button_value(action.get("value") or "")
        except ValueError:
            self.tell(user.get("id"), channel, thread_ts, "This button is not a clearance decision.", payload)
            return
        evidence = {"slack_user_id": user.get("id"), "slack_team_id": (payload.get("team") or {}).get("id"),
                    "action_ts": action.get("action_ts"), "channel": channel,
                    "message_ts": (payload.get("container") or {}).get("message_ts") or message.get("ts")}
        key = f"slack:{user.get('id')}:{action.get('action_ts') or payload.get('trigger_id')}"
        self._decide(run_id, digest, vote, "", user.get("id"), channel, thread_ts, evidence, key, payload)

    def decide_from_modal(self, payload: dict[str, Any], reason: str) -> None:
        """A submitted reject modal: the reason is the decision's comment."""
        user = payload.get("user") or {}
        view = payload.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            run_id, digest = meta["run"], meta["digest"]
        except (ValueError, KeyError, TypeError):
            log.warning("reject modal without clearance metadata from %s ignored", user.get("id"))
            return
        evidence = {"slack_user_id": user.get("id"), "slack_team_id": (payload.get("team") or {}).get("id"),
                    "view_id": view.get("id"), "channel": meta.get("channel")}
        key = f"slack:{user.get('id')}:view:{view.get('id')}"
        self._decide(run_id, digest, "reject", reason, user.get("id"), meta.get("channel"), meta.get("thread_ts"),
                     evidence, key, payload)

    def open_reject_modal(self, payload: dict[str, Any], action: dict[str, Any]) -> None:
        """Reject asks for a reason first (``views.open`` with the click's trigger id, valid 3 s)."""
        from clearance.render.slack_messages import parse_button_value, reject_modal
        from tasks.slack import call

        user = payload.get("user") or {}
        channel = (payload.get("channel") or {}).get("id")
        thread_ts = (payload.get("message") or {}).get("thread_ts")
        try:
            run_id, digest = parse_button_value(action.get("value") or "")
            model, version = self._model_version(run_id)
            view = reject_modal(run_id, digest, model=model, version=version, channel=channel, thread_ts=thread_ts)
            call(self.client, "views_open", trigger_id=payload["trigger_id"], view=view)
        except Exception as exc:  # noqa: BLE001 — tell the person instead of failing silently
            log.warning("could not open the reject dialog for %s: %s", user.get("id"), exc)
            self.tell(user.get("id"), channel, thread_ts, f"Could not open the reject dialog: {exc}", payload)

    def _model_version(self, run_id: str) -> tuple[str, str]:
        from clearance.core.keys import run_index_key

        index = self.store.get_json(run_index_key(run_id))
        return index["model"], index["version"]

    def _decide(self, run_id: str, digest: str, vote: str, comment: str, user_id: str | None, channel: str | None,
                thread_ts: str | None, evidence: dict[str, Any], dedupe_key: str, payload: dict[str, Any]) -> None:
        from clearance.approvals import Vote
        from clearance.config.schema import Channel
        from tasks.approval_intake import UnknownRunError, receive_decision

        principal = self.principal_for(user_id) if user_id else None
        try:
            result = receive_decision(self.store, run_id, principal=principal, identity=user_id or "unknown",
                                      channel=Channel.SLACK, vote=Vote(vote), comment=comment,
                                      artifact_digest=digest, channel_evidence=evidence, dedupe_key=dedupe_key)
        except UnknownRunError as exc:
            self.tell(user_id, channel, thread_ts, f"Not counted: {exc}", payload)
            return
        if result.refusal is not None:
            log.info("slack %s by %s refused: %s", vote, user_id, result.refusal.reason.value)
            self.tell(user_id, channel, thread_ts,
                      f":no_entry: Your {vote} was not counted: {result.refusal.message}.", payload)
            return
        decision = result.decision
        assert decision is not None, "receive_decision returns a decision whenever it returns no refusal"
        request = result.record.request
        self.tell(user_id, channel, thread_ts,
                  f":white_check_mark: Your {vote} of {request.model} {request.version} was counted as "
                  f"{decision.principal}; the request is {result.record.outcome.value}.", payload)

    def tell(self, user_id: str | None, channel: str | None, thread_ts: str | None, text: str,
             payload: dict[str, Any]) -> None:
        """An ephemeral answer to the clicker (chat.postEphemeral, else the payload's response_url).

        ``text`` is plain (emoji codes allowed): it is escaped here, so names, reasons and error
        messages in it cannot mention, link or format."""
        from clearance.render import slack as mrkdwn
        from tasks.slack import call

        text = mrkdwn.escape(text)
        try:
            if channel and user_id:
                extra = {"thread_ts": thread_ts} if thread_ts else {}
                call(self.client, "chat_postEphemeral", channel=channel, user=user_id, text=text, **extra)
                return
            url = payload.get("response_url") or next(
                (u.get("response_url") for u in payload.get("response_urls") or [] if u.get("response_url")), None)
            if url:
                from slack_sdk.webhook import WebhookClient

                WebhookClient(url, timeout=5).send(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # noqa: BLE001 — the decision is recorded whatever happens to the reply
            log.warning("could not answer %s in Slack: %s", user_id, exc)

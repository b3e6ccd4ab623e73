"""What a Slack interaction means, whichever way it arrived (HTTP or Socket Mode).

:meth:`SlackInteractions.ack` is the fast part (no I/O): it answers Slack at once and returns
the slow part as a callable, run after the acknowledgement. The slow part maps the Slack user
to a principal, then goes through :func:`tasks.approval_intake.receive_decision` — the
same authorisation, recording and wake-up as every other channel — and answers the clicker
with an ephemeral message (counted, or refused and why).

Who clicked: an interaction from another workspace than ``CLEARANCE_SLACK_TEAM_ID`` (``team.id``
or ``user.team_id``; a Slack Connect user in a shared channel) is refused and recorded. A user is
a principal only through that principal's pinned ``slack_id`` (*verified* when the workspace is
pinned); the e-mail fallback (``CLEARANCE_SLACK_EMAIL_FALLBACK``) is opt-in, needs the pinned
workspace and a confirmed e-mail, never reaches a principal who has a ``slack_id``, and is
*claimed*. The decision's identity is ``slack:<team id>/<user id>``.

Signature checking is not here: it belongs to the transport (HTTP checks the v0 signature;
Socket Mode is authenticated by the app-level token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from clearance.config.schema import Assurance, Principal
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


class _Shape(BaseModel):
    """Only the fields clearance reads, with their types; every other field is ignored."""

    model_config = ConfigDict(extra="ignore")


class _Ref(_Shape):
    """An object named by its id (a workspace, a channel)."""

    id: StrictStr | None = None


class _User(_Shape):
    id: StrictStr | None = None
    team_id: StrictStr | None = None


class _Action(_Shape):
    action_id: StrictStr | None = None
    value: StrictStr | None = None
    action_ts: StrictStr | None = None


class _Container(_Shape):
    channel_id: StrictStr | None = None
    message_ts: StrictStr | None = None


class _Message(_Shape):
    ts: StrictStr | None = None
    thread_ts: StrictStr | None = None


class _Input(_Shape):
    value: StrictStr | None = None


class _ViewState(_Shape):
    values: dict[str, dict[str, _Input]] | None = None


class _View(_Shape):
    id: StrictStr | None = None
    callback_id: StrictStr | None = None
    private_metadata: StrictStr | None = None
    state: _ViewState | None = None


class _Interaction(_Shape):
    type: StrictStr
    user: _User | None = None
    team: _Ref | None = None
    channel: _Ref | None = None
    container: _Container | None = None
    message: _Message | None = None
    actions: list[_Action] | None = None
    view: _View | None = None
    trigger_id: StrictStr | None = None
    response_url: StrictStr | None = None


def payload_problem(payload: Any) -> str | None:
    """Why a (signed) interaction payload cannot be what Slack sends, naming the field; ``None`` when it can be.

    Only the fields clearance reads are checked (any interaction type passes when those are absent)."""
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    try:
        _Interaction.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        return f"{where}: {first['msg']}"[:200]
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
        """The immediate answer to Slack (``None`` = empty 200) and the work to do afterwards.

        Any field may have any JSON type (the signature proves who sent the body, not its shape): a
        field of the wrong type is read as absent."""
        from clearance.render.slack_messages import (
            APPROVE_ACTION,
            REASON_BLOCK,
            REASON_INPUT,
            REJECT_ACTION,
            REJECT_MODAL,
        )

        kind = payload.get("type")
        if kind == "block_actions":
            for action in _list(payload.get("actions")):
                if not isinstance(action, dict):
                    continue
                action_id = action.get("action_id")
                if action_id == APPROVE_ACTION:
                    return None, lambda a=action: self.decide_from_button(payload, a, "approve")
                if action_id == REJECT_ACTION:
                    return None, lambda a=action: self.open_reject_modal(payload, a)
            return None, None
        view = _dict(payload.get("view"))
        if kind == "view_submission" and view.get("callback_id") == REJECT_MODAL:
            values = _dict(_dict(view.get("state")).get("values"))
            reason = _str(_dict(_dict(values.get(REASON_BLOCK)).get(REASON_INPUT)).get("value")) or ""
            if not reason.strip():
                return {"response_action": "errors", "errors": {REASON_BLOCK: "Say why you reject."}}, None
            return None, lambda: self.decide_from_modal(payload, reason.strip())
        return None, None

    # ----------------------------------------------------------------- who clicked

    def workspace_problem(self, payload: dict[str, Any]) -> str | None:
        """Why the interaction comes from outside ``CLEARANCE_SLACK_TEAM_ID`` (``None``: it does not, or unset).

        Both the workspace the interaction happened in (``team.id``) and the clicker's own workspace
        (``user.team_id``: another one for a Slack Connect user in a shared channel) must be the configured
        one; an interaction that names neither is refused too."""
        configured = self.settings.team_id
        if configured is None:
            return None
        seen = {"team.id": _str(_dict(payload.get("team")).get("id")),
                "user.team_id": _str(_dict(payload.get("user")).get("team_id"))}
        named = {where: team for where, team in seen.items() if team is not None}
        if not named:
            return "the interaction names no workspace"
        foreign = {where: team for where, team in named.items() if team != configured}
        if foreign:
            where, team = next(iter(foreign.items()))
            return f"you are in Slack workspace {team} ({where}); clearance takes decisions from {configured} only"
        return None

    def identity_of(self, payload: dict[str, Any]) -> str:
        """``slack:<team>/<user>``: the clicker's workspace (``user.team_id``, else ``team.id``) and user id."""
        user = _dict(payload.get("user"))
        team = _str(user.get("team_id")) or _str(_dict(payload.get("team")).get("id")) or "?"
        return f"slack:{team}/{_str(user.get('id')) or '?'}"

    def principal_for(self, user_id: str) -> tuple[Principal | None, Assurance, str]:
        """The principal of a Slack user, how sure that is, and how they were matched.

        Only a principal's pinned ``slack_id`` identifies them by default: *verified* when the workspace
        is pinned too (``CLEARANCE_SLACK_TEAM_ID``; :meth:`workspace_problem` has refused every other
        one by then), else *claimed*. With ``CLEARANCE_SLACK_EMAIL_FALLBACK`` a user who is nobody's
        ``slack_id`` may be matched by the e-mail ``users.info`` gives — only when Slack says it is
        confirmed (``is_email_confirmed``), only for a member of the configured workspace (so not without
        ``CLEARANCE_SLACK_TEAM_ID``), never to a principal who has a ``slack_id`` (their pinned id is the
        only way to be them), and always *claimed*."""
        principals = self.principals()
        found = principals.by_slack_id(user_id)
        if found is not None:
            return found, (Assurance.VERIFIED if self.settings.team_id else Assurance.CLAIMED), "slack_id"
        if not self.settings.email_fallback:
            return None, Assurance.CLAIMED, "none"
        if self.settings.team_id is None:  # any workspace's account could carry the e-mail (Slack Connect)
            log.warning("CLEARANCE_SLACK_EMAIL_FALLBACK needs CLEARANCE_SLACK_TEAM_ID: %s not matched by e-mail",
                        user_id)
            return None, Assurance.CLAIMED, "none"
        try:
            from tasks.slack import call

            user = _dict(call(self.client, "users_info", user=user_id).get("user"))
        except Exception as exc:  # noqa: BLE001 — unknown person: refused, not crashed
            log.info("users.info for %s failed: %s", user_id, exc)
            return None, Assurance.CLAIMED, "none"
        email = _str(_dict(user.get("profile")).get("email"))
        if not email or user.get("is_email_confirmed") is not True or user.get("deleted") is True \
                or user.get("is_bot") is True:
            log.info("slack user %s: no confirmed e-mail to match a principal by", user_id)
            return None, Assurance.CLAIMED, "none"
        if user.get("team_id") != self.settings.team_id:
            log.warning("slack user %s belongs to workspace %r, not %s: not matched by e-mail", user_id,
                        user.get("team_id"), self.settings.team_id)
            return None, Assurance.CLAIMED, "none"
        person = principals.by_email(email)
        if person is not None and person.slack_id:
            log.warning("slack user %s has the e-mail of %s, whose pinned slack_id is another: not matched", user_id,
                        person.id)
            return None, Assurance.CLAIMED, "none"
        return person, Assurance.CLAIMED, ("email" if person is not None else "none")

    # ----------------------------------------------------------------- the slow part

    def decide_from_button(self, payload: dict[str, Any], action: dict[str, Any], vote: str) -> None:
        """An Approve click: record it (or its refusal) and tell the clicker."""
        from clearance.render.slack_messages import parse_button_value

        user_id = _str(_dict(payload.get("user")).get("id"))
        container = _dict(payload.get("container"))
        channel = _str(_dict(payload.get("channel")).get("id")) or _str(container.get("channel_id"))
        message = _dict(payload.get("message"))
        thread_ts = _str(message.get("thread_ts"))
        try:
            run_id, digest = parse_button_value(_str(action.get("value")) or "")
        except ValueError:
            self.tell(user_id, channel, thread_ts, "This button is not a clearance decision.", payload)
            return
        evidence = {"slack_user_id": user_id, "slack_team_id": _str(_dict(payload.get("team")).get("id")),
                    "slack_user_team_id": _str(_dict(payload.get("user")).get("team_id")),
                    "action_ts": _str(action.get("action_ts")), "channel": channel,
                    "message_ts": _str(container.get("message_ts")) or _str(message.get("ts"))}
        key = f"slack:{user_id}:{_str(action.get('action_ts')) or _str(payload.get('trigger_id'))}"
        self._decide(run_id, digest, vote, "", user_id, channel, thread_ts, evidence, key, payload)

    def decide_from_modal(self, payload: dict[str, Any], reason: str) -> None:
        """A submitted reject modal: the reason is the decision's comment."""
        user_id = _str(_dict(payload.get("user")).get("id"))
        view = _dict(payload.get("view"))
        try:
            meta = json.loads(_str(view.get("private_metadata")) or "{}")
        except (ValueError, RecursionError):
            meta = None
        run_id, digest = (_str(meta.get("run")), _str(meta.get("digest"))) if isinstance(meta, dict) else (None, None)
        if not isinstance(meta, dict) or run_id is None or digest is None:
            log.warning("reject modal without clearance metadata from %s ignored", user_id)
            return
        channel, thread_ts = _str(meta.get("channel")), _str(meta.get("thread_ts"))
        evidence = {"slack_user_id": user_id, "slack_team_id": _str(_dict(payload.get("team")).get("id")),
                    "slack_user_team_id": _str(_dict(payload.get("user")).get("team_id")),
                    "view_id": _str(view.get("id")), "channel": channel}
        key = f"slack:{user_id}:view:{_str(view.get('id'))}"
        self._decide(run_id, digest, "reject", reason, user_id, channel, thread_ts, evidence, key, payload)

    def open_reject_modal(self, payload: dict[str, Any], action: dict[str, Any]) -> None:
        """Reject asks for a reason first (``views.open`` with the click's trigger id, valid 3 s).

        A click from another workspace opens nothing: it is refused (and recorded) at once."""
        from clearance.render.slack_messages import parse_button_value, reject_modal
        from tasks.slack import call

        user_id = _str(_dict(payload.get("user")).get("id"))
        channel = _str(_dict(payload.get("channel")).get("id"))
        thread_ts = _str(_dict(payload.get("message")).get("thread_ts"))
        if self.workspace_problem(payload) is not None:
            try:
                run_id, digest = parse_button_value(_str(action.get("value")) or "")
            except ValueError:
                self.tell(user_id, channel, thread_ts, "This button is not a clearance decision.", payload)
                return
            evidence = {"slack_user_id": user_id, "slack_team_id": _str(_dict(payload.get("team")).get("id")),
                        "slack_user_team_id": _str(_dict(payload.get("user")).get("team_id")), "channel": channel}
            key = f"slack:{user_id}:{_str(action.get('action_ts')) or _str(payload.get('trigger_id'))}"
            self._decide(run_id, digest, "reject", "", user_id, channel, thread_ts, evidence, key, payload)
            return
        try:
            run_id, digest = parse_button_value(_str(action.get("value")) or "")
            model, version = self._model_version(run_id)
            view = reject_modal(run_id, digest, model=model, version=version, channel=channel, thread_ts=thread_ts)
            call(self.client, "views_open", trigger_id=_str(payload.get("trigger_id")), view=view)
        except Exception as exc:  # noqa: BLE001 — tell the person instead of failing silently
            log.warning("could not open the reject dialog for %s: %s", user_id, exc)
            self.tell(user_id, channel, thread_ts, f"Could not open the reject dialog: {exc}", payload)

    def _model_version(self, run_id: str) -> tuple[str, str]:
        from clearance.core.keys import run_index_key

        index = self.store.get_json(run_index_key(run_id))
        return index["model"], index["version"]

    def _decide(self, run_id: str, digest: str, vote: str, comment: str, user_id: str | None, channel: str | None,
                thread_ts: str | None, evidence: dict[str, Any], dedupe_key: str, payload: dict[str, Any]) -> None:
        from clearance.approvals import RefusalReason, Vote
        from clearance.config.schema import Channel
        from tasks.approval_intake import UnknownRunError, receive_decision

        identity = self.identity_of(payload)
        foreign = self.workspace_problem(payload)
        principal: Principal | None = None
        assurance, matched_by = Assurance.CLAIMED, "none"
        if foreign is not None:
            # Recorded as a refusal of an unknown person: nobody from another workspace is a principal here.
            log.warning("slack %s by %s refused: %s", vote, identity, foreign)
            evidence = {**evidence, "refused": "foreign_workspace"}
        elif user_id:
            principal, assurance, matched_by = self.principal_for(user_id)
        evidence = {**evidence, "matched_by": matched_by}
        try:
            result = receive_decision(self.store, run_id, principal=principal, identity=identity,
                                      channel=Channel.SLACK, vote=Vote(vote), comment=comment,
                                      artifact_digest=digest, channel_evidence=evidence, dedupe_key=dedupe_key,
                                      assurance=assurance)
        except UnknownRunError as exc:
            self.tell(user_id, channel, thread_ts, f"Not counted: {exc}", payload)
            return
        if result.refusal is not None:
            log.info("slack %s by %s refused: %s", vote, identity, result.refusal.reason.value)
            why = foreign if foreign is not None and result.refusal.reason is RefusalReason.UNKNOWN_PRINCIPAL \
                else result.refusal.message
            self.tell(user_id, channel, thread_ts, f":no_entry: Your {vote} was not counted: {why}.", payload)
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
            url = _str(payload.get("response_url")) or next(
                (u for u in (_str(_dict(item).get("response_url")) for item in _list(payload.get("response_urls")))
                 if u), None)
            if url:
                from slack_sdk.webhook import WebhookClient

                WebhookClient(url, timeout=5).send(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # noqa: BLE001 — the decision is recorded whatever happens to the reply
            log.warning("could not answer %s in Slack: %s", user_id, exc)


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None

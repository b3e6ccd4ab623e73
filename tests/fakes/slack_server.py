"""A local Slack: the Web API methods clearance uses, a Socket Mode WebSocket, and signed interactions.

The real ``slack-sdk`` client talks to it over HTTP (``WebClient(base_url=fake.base_url)``).
It speaks the real contract, as the public OpenAPI spec writes it down
(``tests/specs/slack/slack_web_openapi_v2.subset.json``, made by ``scripts/make_spec_subsets.py``):

- every request's parameters are checked against the method's declared parameters (required
  ones present, no unknown ones, declared types, ``blocks`` a Block Kit array), and the token;
- every response — success or error — is validated against the method's response schema with
  JSON Schema Draft 4 before it is sent;
- messages are kept by channel and ``ts``, so ``chat.update`` on an unknown ``ts`` answers
  ``message_not_found`` and an unknown channel ``channel_not_found``, as Slack does;
- faults can be injected per method: HTTP 429 with ``Retry-After``, 5xx, or a Slack error code.

Anything that breaks the contract is appended to :attr:`FakeSlack.violations`; tests assert it
stays empty. ``apps.connections.open`` (Socket Mode) is newer than the 2020 spec: it is checked
against a small schema written here from Slack's documentation instead. Likewise ``users.info``
answers with the user object's ``is_email_confirmed`` (documented on Slack's user type, absent
from the 2020 spec's ``objs_user``), checked against :data:`USER_EXTRA_SCHEMA`.

Users belong to a workspace: :data:`TEAM_ID` unless ``user_teams`` says another one (a Slack
Connect user seen from a shared channel); ``unconfirmed`` users have an e-mail Slack has not
confirmed. ``block_actions`` / ``view_submission`` build payloads from any workspace (``team``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from jsonschema import Draft4Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "slack" / "slack_web_openapi_v2.subset.json"
TEAM_ID = "T0CLEAR0001"
BOT_ID = "B0CLEARBOT1"
BOT_USER = "U0CLEARBOT1"
APP_ID = "A0CLEARAPP1"

#: Fields of Slack's user object (https://api.slack.com/types/user) newer than the 2020 spec's ``objs_user``.
USER_EXTRA_SCHEMA = {
    "type": "object", "required": ["id", "team_id", "is_email_confirmed"],
    "properties": {"id": {"type": "string", "pattern": "^[UW][A-Z0-9]{2,}$"},
                   "team_id": {"type": "string", "pattern": "^T[A-Z0-9]{2,}$"},
                   "is_email_confirmed": {"type": "boolean"}},
}

#: apps.connections.open is not in the 2020 spec; its documented response, as a schema.
CONNECTIONS_OPEN_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["ok", "url"],
    "properties": {"ok": {"enum": [True]}, "url": {"type": "string", "pattern": "^wss?://"}},
}


@dataclass
class Fault:
    """An injected failure of the next ``times`` calls of a method."""

    status: int = 200
    retry_after: int | None = None
    error: str | None = None
    times: int = 1


@dataclass
class Call:
    """One request the fake received (after token and contract checks)."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    status: int = 200


class FakeSlack:
    """The state of the local Slack and its HTTP + WebSocket server."""

    def __init__(self, *, bot_token: str = "xoxb-0000000000-fake-bot-token", app_token: str = "xapp-1-fake-app-token",
                 channels: tuple[str, ...] = ("C0123456789",), not_member: tuple[str, ...] = (),
                 users: dict[str, str | None] | None = None, user_teams: dict[str, str] | None = None,
                 unconfirmed: tuple[str, ...] = ()) -> None:
        spec = json.loads(SPEC_PATH.read_text())
        self.operations = {path.lstrip("/"): next(iter(ops.values())) for path, ops in spec["paths"].items()}
        self.definitions = spec["definitions"]
        self.bot_token = bot_token
        self.app_token = app_token
        self.channels = set(channels)
        self.not_member = set(not_member)
        self.users = dict(users or {})  # Slack user id → e-mail (None: a member without a visible e-mail)
        self.user_teams = dict(user_teams or {})  # Slack user id → their workspace, when not TEAM_ID
        self.unconfirmed = set(unconfirmed)  # users whose e-mail Slack has not confirmed
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.faults: dict[str, list[Fault]] = {}
        self.valid_triggers: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: list[WebSocket] = []
        self.socket_links = 0  # WebSocket links accepted so far (a reconnect adds one)
        self._connected = threading.Event()
        self._acks: dict[str, dict[str, Any]] = {}
        self._ack_events: dict[str, threading.Event] = {}
        self.port = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> FakeSlack:
        app = Starlette(routes=[
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
            Route("/response_url/{token}", self._response_url, methods=["POST"]),
            WebSocketRoute("/link/", self._socket),
        ])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws_ping_interval=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="fake-slack")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake Slack did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def env(self, channel: str = "C0123456789", signing_secret: str = "fake-signing-secret") -> dict[str, str]:
        """``CLEARANCE_SLACK_*`` pointing clearance at this fake."""
        return {"CLEARANCE_SLACK_BOT_TOKEN": self.bot_token, "CLEARANCE_SLACK_APP_TOKEN": self.app_token,
                "CLEARANCE_SLACK_SIGNING_SECRET": signing_secret, "CLEARANCE_SLACK_DEFAULT_CHANNEL": channel,
                "CLEARANCE_SLACK_BASE_URL": self.base_url, "CLEARANCE_SLACK_TEAM_ID": TEAM_ID}

    # ----------------------------------------------------------------- test controls

    def inject(self, method: str, *, status: int = 200, retry_after: int | None = None, error: str | None = None,
               times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail this way."""
        self.faults.setdefault(method, []).append(Fault(status, retry_after, error, times))

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, parent_ts: str) -> list[dict[str, Any]]:
        """Replies in a thread, oldest first."""
        return sorted((m for (ch, _), m in self.messages.items() if ch == channel and m.get("thread_ts") == parent_ts),
                      key=lambda m: m["ts"])

    def issue_trigger(self) -> str:
        """A trigger id as Slack puts in an interaction (views.open accepts only these)."""
        trigger = f"{int(time.time())}.{TEAM_ID[1:]}.{uuid.uuid4().hex[:20]}"
        self.valid_triggers.add(trigger)
        return trigger

    # ----------------------------------------------------------------- the Web API

    def _next_ts(self) -> str:
        return f"{int(time.time()):010d}.{next(self._seq):06d}"

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        params = self._params(request, raw)
        token = ((request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
                 or params.pop("token", None))
        params.pop("token", None)
        with self._lock:
            fault = self._take_fault(method)
        if fault and fault.status != 200:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self.calls.append(Call(method, params, status=fault.status))
            if fault.status == 429:
                body = {"ok": False, "error": "ratelimited"}
                return JSONResponse(body, status_code=429, headers=headers)
            return Response("upstream connect error", status_code=fault.status, headers=headers)
        self.calls.append(Call(method, params))
        if method == "apps.connections.open":
            return self._answer(method, self._connections_open(token), schema=CONNECTIONS_OPEN_SCHEMA)
        operation = self.operations.get(method)
        if operation is None:
            self.violations.append(f"{method}: not a method of the spec subset")
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
        if token is None:
            return self._answer(method, {"ok": False, "error": "not_authed"})
        if not hmac.compare_digest(token.encode(), self.bot_token.encode()):
            return self._answer(method, {"ok": False, "error": "invalid_auth"})
        problems = self._check_request(operation, params)
        if problems:
            self.violations.extend(f"{method} request: {p}" for p in problems)
            return self._answer(method, {"ok": False, "error": "invalid_arg_name"})
        if fault and fault.error:
            return self._answer(method, {"ok": False, "error": fault.error})
        handler = getattr(self, "_m_" + method.replace(".", "_"))
        with self._lock:
            body = handler(params)
        return self._answer(method, body)

    def _take_fault(self, method: str) -> Fault | None:
        queue = self.faults.get(method) or []
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    @staticmethod
    def _params(request: Request, raw: bytes) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params.items())
        kind = request.headers.get("content-type", "")
        if raw and kind.startswith("application/json"):
            body = json.loads(raw)
            params.update(body)
        elif raw:
            params.update({k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()})
        return params

    def _check_request(self, operation: dict[str, Any], params: dict[str, Any]) -> list[str]:
        """Declared parameters only, required ones present, declared types (JSON values as Slack reads them)."""
        declared = {p["name"]: p for p in operation.get("parameters", []) if p["name"] != "token"}
        properties, normalized = {}, {}
        for name, value in params.items():
            spec = declared.get(name)
            kind = spec.get("type", "string") if spec else "string"
            if spec:
                properties[name] = {"type": kind}
            normalized[name] = _as_declared(value, kind)
        schema = {"type": "object", "properties": properties, "additionalProperties": False,
                  "required": [n for n, p in declared.items() if p.get("required")]}
        problems = [e.message for e in Draft4Validator(schema).iter_errors(normalized)]
        if "blocks" in params:
            blocks = params["blocks"] if not isinstance(params["blocks"], str) else json.loads(params["blocks"])
            schema = {**self.definitions["blocks"], "definitions": self.definitions}
            problems += [f"blocks: {e.message}" for e in Draft4Validator(schema).iter_errors(blocks)]
            problems += _block_kit_problems(blocks)
        if "view" in params:
            view = params["view"] if not isinstance(params["view"], str) else json.loads(params["view"])
            problems += _block_kit_problems(view.get("blocks", []))
        return problems

    def _answer(self, method: str, body: dict[str, Any], schema: dict[str, Any] | None = None) -> JSONResponse:
        """Validate the response against the spec (Draft 4) before sending it."""
        if schema is None:
            operation = self.operations[method]
            schema = operation["responses"]["200" if body.get("ok") else "default"]["schema"]
        validator = Draft4Validator({**schema, "definitions": self.definitions})
        for error in validator.iter_errors(body):
            self.violations.append(f"{method} response {'/'.join(map(str, error.path))}: {error.message}")
        return JSONResponse(body)

    # ----------------------------------------------------------------- methods

    def _channel_problem(self, channel: str) -> str | None:
        if channel not in self.channels:
            return "channel_not_found"
        if channel in self.not_member:
            return "not_in_channel"
        return None

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://clearance-test.slack.com/", "team": "clearance test",
                "user": "clearance", "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID}

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params["channel"]
        if problem := self._channel_problem(channel):
            return {"ok": False, "error": problem}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = params.get("thread_ts")
        if thread_ts and (channel, thread_ts) not in self.messages:
            self.violations.append(f"chat.postMessage: thread_ts {thread_ts} names no message in {channel}")
        ts = self._next_ts()
        blocks = _blocks(params)
        message = {"type": "message", "subtype": "bot_message", "text": params.get("text", ""), "ts": ts,
                   "bot_id": BOT_ID}
        if blocks:
            message["blocks"] = blocks
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages[(channel, ts)] = dict(message, channel=channel, updates=0,
                                            reply_broadcast=_truthy(params.get("reply_broadcast")))
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params["channel"], params["ts"]
        if problem := self._channel_problem(channel):
            return {"ok": False, "error": problem}
        stored = self.messages.get((channel, ts))
        if stored is None:
            return {"ok": False, "error": "message_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        stored["text"] = params.get("text", stored["text"])
        if "blocks" in params:
            stored["blocks"] = _blocks(params)
        stored["updates"] += 1
        return {"ok": True, "channel": channel, "ts": ts, "text": stored["text"], "message": {"text": stored["text"]}}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params["channel"]
        if problem := self._channel_problem(channel):
            return {"ok": False, "error": problem if problem != "not_in_channel" else "channel_not_found"}
        if params["user"] not in self.users:
            return {"ok": False, "error": "user_not_in_channel"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        self.ephemerals.append({"channel": channel, "user": params["user"], "text": params.get("text", ""),
                                "thread_ts": params.get("thread_ts"), "ts": ts})
        return {"ok": True, "message_ts": ts}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = params["trigger_id"]
        if trigger not in self.valid_triggers:
            return {"ok": False, "error": "invalid_trigger_id"}
        self.valid_triggers.discard(trigger)  # a trigger opens one view
        view = params["view"] if not isinstance(params["view"], str) else json.loads(params["view"])
        view_id = "V" + uuid.uuid4().hex[:10].upper()
        opened = dict(view, id=view_id, team_id=TEAM_ID, app_id=APP_ID, bot_id=BOT_ID, hash=self._next_ts(),
                      root_view_id=view_id, state={"values": {}})
        self.views.append(opened)
        return {"ok": True, "view": opened}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user")
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        email = self.users[user]
        team = self.user_teams.get(user, TEAM_ID)
        name = (email or user).split("@")[0].lower()
        profile = {"real_name": name.title(), "display_name": name,
                   "avatar_hash": "ge3b51ca72de", "real_name_normalized": name.title(),
                   "display_name_normalized": name, "title": "", "phone": "", "skype": "",
                   "status_text": "", "status_emoji": "", "fields": None, "team": team}
        if email:
            profile["email"] = email
        body = {"ok": True, "user": {
            "id": user, "team_id": team, "name": name, "deleted": False, "real_name": name.title(),
            "is_bot": False, "is_app_user": False, "updated": int(time.time()), "tz": "Europe/Berlin",
            "is_email_confirmed": bool(email) and user not in self.unconfirmed, "profile": profile}}
        for error in Draft4Validator(USER_EXTRA_SCHEMA).iter_errors(body["user"]):
            self.violations.append(f"users.info response user/{'/'.join(map(str, error.path))}: {error.message}")
        return body

    def _connections_open(self, token: str | None) -> dict[str, Any]:
        if token is None or not hmac.compare_digest(token.encode(), self.app_token.encode()):
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"}

    async def _response_url(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.ephemerals.append({"response_url": request.path_params["token"], "text": body.get("text", "")})
        return Response("ok")

    # ----------------------------------------------------------------- Socket Mode

    async def _socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self._loop = asyncio.get_running_loop()
        self._sockets.append(websocket)
        self.socket_links += 1
        await websocket.send_text(json.dumps({"type": "hello", "num_connections": len(self._sockets),
                                              "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                                              "connection_info": {"app_id": APP_ID}}))
        self._connected.set()
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                envelope = message.get("envelope_id")
                if envelope:
                    self._acks[envelope] = message
                    event = self._ack_events.get(envelope)
                    if event:
                        event.set()
        except WebSocketDisconnect:
            pass
        finally:
            self._sockets.remove(websocket)
            if not self._sockets:
                self._connected.clear()

    def end_socket(self, how: str) -> None:
        """End the app's current link as Slack does: ``refresh`` sends the documented ``disconnect``
        message (reason ``refresh_requested``; the app opens a new link, then this one is closed),
        ``drop`` closes the WebSocket without warning (a network cut or a Slack restart)."""
        if not self._sockets or self._loop is None:
            raise RuntimeError("no Socket Mode client is connected")
        websocket = self._sockets[-1]
        if how == "refresh":
            message = {"type": "disconnect", "reason": "refresh_requested",
                       "debug_info": {"host": "fake-slack"}}
            coro = websocket.send_text(json.dumps(message))
        elif how == "drop":
            coro = websocket.close(code=1001)
        else:
            raise ValueError(f"unknown way to end a link: {how!r}")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    @property
    def live_socket_links(self) -> int:
        return len(self._sockets)

    def wait_socket(self, timeout: float = 10) -> bool:
        """Wait until a Socket Mode client is connected."""
        return self._connected.wait(timeout)

    def deliver_socket(self, payload: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        """Send an ``interactive`` envelope to the connected app; returns its acknowledgement.

        Slack gives an app 3 seconds to acknowledge; a late or missing ack raises TimeoutError.
        """
        if not self._sockets or self._loop is None:
            raise RuntimeError("no Socket Mode client is connected")
        envelope_id = str(uuid.uuid4())
        event = self._ack_events[envelope_id] = threading.Event()
        envelope = {"envelope_id": envelope_id, "type": "interactive", "payload": payload,
                    "accepts_response_payload": payload.get("type") == "view_submission",
                    "retry_attempt": 0, "retry_reason": ""}
        asyncio.run_coroutine_threadsafe(self._sockets[-1].send_text(json.dumps(envelope)), self._loop).result(5)
        if not event.wait(timeout):
            raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
        return self._acks[envelope_id]


# ----------------------------------------------------------------------------- helpers


def _truthy(value: Any) -> bool:
    return value in (True, "true", "1", 1)


def _blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = params.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def _as_declared(value: Any, kind: str) -> Any:
    """A parameter as Slack reads it: form values are strings; JSON bodies may carry arrays/objects."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return json.dumps(value)  # Slack takes JSON-encoded structures for string params (blocks, view…)
    if kind == "boolean" and isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value, value)
    if kind == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


_TEXT_LIMITS = {"header": 150, "section": 3000}


def _block_kit_problems(blocks: Any) -> list[str]:
    """The Block Kit limits Slack enforces with ``invalid_blocks`` that the loose spec schema misses."""
    problems = []
    if not isinstance(blocks, list):
        return ["blocks is not an array"]
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (Slack allows 50)")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            problems.append(f"block {i} is not an object")
            continue
        kind = block.get("type")
        text = block.get("text") if isinstance(block.get("text"), dict) else {}
        text = text.get("text", "") if kind in _TEXT_LIMITS else ""
        if kind == "section" and isinstance(block.get("text"), str):
            problems.append(f"block {i}: section text must be a text object")
        if kind in _TEXT_LIMITS and len(text) > _TEXT_LIMITS[kind]:
            problems.append(f"block {i} ({kind}) text of {len(text)} characters")
        if kind == "section" and not block.get("text") and not block.get("fields"):
            problems.append(f"block {i}: section without text or fields")
        if kind == "section" and len(block.get("fields") or []) > 10:
            problems.append(f"block {i}: more than 10 fields")
        if kind == "actions":
            for element in block.get("elements", []):
                if len(element.get("value", "")) > 2000:
                    problems.append(f"block {i}: button value over 2000 characters")
                if len(element.get("action_id", "")) > 255:
                    problems.append(f"block {i}: action_id over 255 characters")
        if kind == "context" and len(block.get("elements", [])) > 10:
            problems.append(f"block {i}: context with more than 10 elements")
    return problems


# ----------------------------------------------------------------------------- Slack's side of interactions


def sign(secret: str, body: bytes, timestamp: int | str | None = None) -> dict[str, str]:
    """The headers Slack sends with a request: v0 HMAC-SHA256 over ``v0:{ts}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def form_body(payload: dict[str, Any]) -> bytes:
    """An interaction as Slack posts it: form-encoded ``payload=<json>``."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def action_ts() -> str:
    return f"{time.time():.6f}"


def block_actions(fake: FakeSlack, *, user: str, channel: str, message_ts: str, action_id: str, value: str,
                  thread_ts: str | None = None, team: str | None = None,
                  user_team: str | None = None) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a button of a stored message.

    ``team`` is the workspace the click happened in (``team.id``), ``user_team`` the clicker's own
    (``user.team_id``); both default to the user's workspace in the fake (:data:`TEAM_ID`)."""
    user_team = user_team or fake.user_teams.get(user, TEAM_ID)
    team = team or user_team
    stored = fake.messages.get((channel, message_ts), {})
    message = {"type": "message", "ts": message_ts, "text": stored.get("text", ""), "bot_id": BOT_ID,
               "blocks": stored.get("blocks", [])}
    if thread_ts or stored.get("thread_ts"):
        message["thread_ts"] = thread_ts or stored["thread_ts"]
    return {
        "type": "block_actions", "api_app_id": APP_ID, "token": "verification-token-unused",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": user_team},
        "team": {"id": team, "domain": "clearance-test" if team == TEAM_ID else "elsewhere"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": fake.issue_trigger(), "channel": {"id": channel, "name": "ml-promotions"},
        "message": message, "state": {"values": {}},
        "response_url": f"http://127.0.0.1:{fake.port}/response_url/{uuid.uuid4().hex}",
        "actions": [{"action_id": action_id, "block_id": "clearance_decision", "type": "button",
                     "text": {"type": "plain_text", "text": action_id}, "value": value, "action_ts": action_ts()}],
    }


def view_submission(fake: FakeSlack, *, user: str, view: dict[str, Any], reason: str, team: str | None = None,
                    user_team: str | None = None) -> dict[str, Any]:
    """The ``view_submission`` payload of an opened modal, with the reason typed in."""
    user_team = user_team or fake.user_teams.get(user, TEAM_ID)
    team = team or user_team
    return {
        "type": "view_submission", "api_app_id": APP_ID, "token": "verification-token-unused",
        "team": {"id": team, "domain": "clearance-test" if team == TEAM_ID else "elsewhere"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": user_team},
        "trigger_id": fake.issue_trigger(),
        "view": dict(view, state={"values": {"reason": {"reason_input": {"type": "plain_text_input",
                                                                         "value": reason}}}}),
        "response_urls": [],
    }


def button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any] | None:
    """The button with ``action_id`` in a message's blocks (``None`` when it is gone)."""
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return element
    return None


# ----------------------------------------------------------------------------- serving an ASGI app in a thread


class AsgiThread:
    """An ASGI app served by uvicorn on a free loopback port, in a daemon thread of this process.

    The thread runs in a copy of the caller's context, so settings held in context variables
    (Prefect's temporary_settings) apply to the app's requests and background tasks too.
    """

    def __init__(self, app: Any) -> None:
        import contextvars

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self.server.run,), kwargs={"sockets": [sock]},
                                       daemon=True, name="asgi-under-test")
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("app did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

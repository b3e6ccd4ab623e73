"""`/slack/interactions`: the signature is checked before anything is parsed; acks are immediate."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clearance.app.serve.slack_interactions import SlackInteractions, verify_signature
from clearance.app.serve.slack_routes import routes
from clearance.settings.slack import SlackSettings
from tests.fakes.slack_server import form_body, sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000.0


def slack_sign(body: bytes, ts: str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- the algorithm


def test_slack_documented_example_signature_verifies():
    # The worked example of Slack's "Verifying requests from Slack" guide.
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert verify_signature(SECRET, body, "1531420618", expected, now=1531420618 + 10) is None


@pytest.mark.parametrize("timestamp, signature, now, why", [
    (None, "v0=00", NOW, "missing"),
    ("1700000000", None, NOW, "missing"),
    ("", "v0=00", NOW, "missing"),
    ("17000000x0", "v0=00", NOW, "non-numeric"),
    ("-1700000000", "v0=00", NOW, "non-numeric"),
    ("1700000000.5", "v0=00", NOW, "non-numeric"),
    ("١٧٠٠٠٠٠٠٠٠", "v0=00", NOW, "non-numeric"),  # Arabic-Indic digits: isdigit() but not ASCII
    ("1699999699", "SIGN", NOW, "window"),  # 301 s old
    ("1700000301", "SIGN", NOW, "window"),  # 301 s in the future
    ("1700000000", "v1=abc", NOW, "version"),
    ("1700000000", "v0=" + "0" * 64, NOW, "mismatch"),
    ("1700000000", "v0=ü", NOW, "mismatch"),
])
def test_bad_signatures_are_refused(timestamp, signature, now, why):
    body = b"payload=%7B%7D"
    if signature == "SIGN":
        signature = slack_sign(body, timestamp)
    assert why in verify_signature(SECRET, body, timestamp, signature, now)


def test_signature_binds_body_secret_and_timestamp():
    body, ts = b"payload=%7B%22a%22%3A1%7D", "1700000000"
    good = slack_sign(body, ts)
    assert verify_signature(SECRET, body, ts, good, NOW) is None
    assert verify_signature(SECRET, body, ts, good, NOW + 300) is None  # the window is inclusive
    assert verify_signature(SECRET, body + b"x", ts, good, NOW) == "signature mismatch"
    assert verify_signature("other", body, ts, good, NOW) == "signature mismatch"
    assert verify_signature(SECRET, body, "1700000001", good, NOW) == "signature mismatch"


# --------------------------------------------------------------------------- the endpoint


class RecordingInteractions(SlackInteractions):
    """Counts what reaches the parsing stage and the background work, without Slack or S3."""

    def __init__(self) -> None:
        super().__init__(SlackSettings(signing_secret=SECRET))
        self.acked: list[dict] = []
        self.worked: list[str] = []

    def ack(self, payload):
        self.acked.append(payload)
        answer, work = super().ack(payload)
        if work is None:
            return answer, None
        return answer, lambda: self.worked.append(payload["type"])


@pytest.fixture
def app():
    interactions = RecordingInteractions()
    settings = SlackSettings(signing_secret=SECRET)
    client = TestClient(Starlette(routes=routes(settings, interactions)))
    return client, interactions


def approve_payload() -> dict:
    return {"type": "block_actions", "user": {"id": "U0SAM000002"}, "trigger_id": "1.2.3",
            "channel": {"id": "C0123456789"}, "container": {"message_ts": "1700000000.000001"},
            "actions": [{"action_id": "clearance_approve", "value": json.dumps({"run": "r", "digest": "d"}),
                         "action_ts": "1700000000.123456"}]}


def test_valid_request_is_acked_and_worked_after(app):
    client, interactions = app
    body = form_body(approve_payload())
    response = client.post("/slack/interactions", content=body, headers=sign(SECRET, body))
    assert response.status_code == 200 and response.content == b""
    assert len(interactions.acked) == 1 and interactions.worked == ["block_actions"]


@pytest.mark.parametrize("mangle", ["wrong-secret", "stale", "future", "non-numeric", "no-headers", "tampered"])
def test_invalid_requests_get_401_and_are_never_parsed(app, mangle, caplog):
    client, interactions = app
    body = form_body(approve_payload())
    headers = {
        "wrong-secret": lambda: sign("nope", body),
        # an hour out: the route reads the clock again, later (the 300-s edges are tested on a fixed clock above)
        "stale": lambda: sign(SECRET, body, int(time.time()) - 3600),
        "future": lambda: sign(SECRET, body, int(time.time()) + 3600),
        "non-numeric": lambda: dict(sign(SECRET, body), **{"X-Slack-Request-Timestamp": "soon"}),
        "no-headers": lambda: {"Content-Type": "application/x-www-form-urlencoded"},
        "tampered": lambda: sign(SECRET, body),
    }[mangle]()
    sent = body + b"%20" if mangle == "tampered" else body
    with caplog.at_level("WARNING"):
        response = client.post("/slack/interactions", content=sent, headers=headers)
    assert response.status_code == 401
    assert interactions.acked == [] and interactions.worked == []
    assert "U0SAM000002" not in caplog.text and "payload" not in caplog.text  # the body is never logged
    assert SECRET not in caplog.text


def test_unconfigured_secret_refuses_everything():
    client = TestClient(Starlette(routes=routes(SlackSettings(signing_secret=None), RecordingInteractions())))
    body = form_body(approve_payload())
    assert client.post("/slack/interactions", content=body, headers=sign(SECRET, body)).status_code == 503


def test_signed_garbage_is_a_400(app):
    client, interactions = app
    for body in (b"nopayload=1", b"payload=not-json", b"payload=%5B1%5D"):
        assert client.post("/slack/interactions", content=body, headers=sign(SECRET, body)).status_code == 400
    assert interactions.acked == []


def test_oversized_bodies_are_refused_unread(app):
    client, interactions = app
    body = b"payload=" + b"a" * 1_100_000
    assert client.post("/slack/interactions", content=body, headers=sign(SECRET, body)).status_code == 413
    assert interactions.acked == []


def test_reject_modal_needs_a_reason_answered_synchronously(app):
    client, interactions = app
    view = {"id": "V0123ABC", "callback_id": "clearance_reject_modal",
            "private_metadata": json.dumps({"run": "r", "digest": "d"}),
            "state": {"values": {"reason": {"reason_input": {"value": "   "}}}}}
    payload = {"type": "view_submission", "user": {"id": "U0BEA000004"}, "view": view}
    body = form_body(payload)
    response = client.post("/slack/interactions", content=body, headers=sign(SECRET, body))
    assert response.json() == {"response_action": "errors", "errors": {"reason": "Say why you reject."}}
    assert interactions.worked == []
    view["state"]["values"]["reason"]["reason_input"]["value"] = "no KPI"
    body = form_body(payload)
    response = client.post("/slack/interactions", content=body, headers=sign(SECRET, body))
    assert response.status_code == 200 and response.content == b"" and interactions.worked == ["view_submission"]


def test_other_interactions_are_acked_and_ignored(app):
    client, interactions = app
    payload = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "somebody_elses"}]}
    body = form_body(payload)
    assert client.post("/slack/interactions", content=body, headers=sign(SECRET, body)).status_code == 200
    assert interactions.worked == []


def test_healthz_and_route_are_in_the_served_app(monkeypatch):
    from clearance.app.serve.app import build_app

    monkeypatch.setenv("CLEARANCE_SLACK_SIGNING_SECRET", SECRET)
    client = TestClient(build_app())
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.post("/slack/interactions", content=b"payload=%7B%7D").status_code == 401

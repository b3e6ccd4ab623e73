"""Finding 10: no request to ``clearance serve`` makes it answer 500, signed or not.

Before: ``POST /jira/webhook`` with a non-ASCII ``X-Hub-Signature`` raised in ``hmac.compare_digest``
(500), and correctly signed bodies whose fields had the wrong JSON type (``"issue": "x"``,
``"actions": "x"``) raised ``AttributeError`` on both endpoints (500). A malformed request must get
a 4xx with a short reason; a well-formed one that means nothing to clearance, a 2xx.

The examples run both endpoints of the real app (Starlette's TestClient) behind which an open
approval request waits (an in-memory store; nothing leaves the process), so well-aimed bodies
reach the approval intake too. The property test draws arbitrary headers and bodies, including
correctly signed bodies of arbitrary JSON and of Slack/Jira-shaped JSON with any type in any field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clearance.approvals import ApprovalRequest
from clearance.config.schema import Assurance, Channel, Principals
from clearance.core.clock import utcnow
from clearance.core.keys import approvals_key, jira_state_key, run_index_key
from clearance.render.slack_messages import APPROVE_ACTION, REJECT_ACTION, REJECT_MODAL, button_value
from clearance.settings.jira import JiraSettings
from clearance.settings.slack import SlackSettings
from tests.fakes.memory_store import MemoryStore
from tests.fakes.slack_server import TEAM_ID, form_body, sign

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JIRA_SECRET = "whsec-no-500"
RUN = "run-no-500"
DIGEST = "ab" * 32
ISSUE_ID = "10100"
SAM = "U0SAM000002"

PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "dana", "email": "dana@example.com", "slack_id": "U0DANA00001", "jira_account_id": "acc-dana"},
    {"id": "sam", "email": "sam@example.com", "slack_id": SAM, "jira_account_id": "acc-sam", "roles": ["security"]},
    {"id": "rita", "email": "rita@example.com", "roles": ["business"]},
]})


class OfflineSlack:
    """A Web API client that is never reachable: every call fails as a dropped connection would."""

    def __getattr__(self, method: str):
        def fail(**_: Any):
            raise OSError(f"offline: {method}")

        return fail


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Any]]:
    """Both endpoints in front of one open request (Slack and Jira allowed), with no way out of the process."""
    from clearance.app.serve.jira_routes import routes as jira_routes
    from clearance.app.serve.slack_interactions import SlackInteractions
    from clearance.app.serve.slack_routes import routes as slack_routes
    from tasks.approvals_record import open_record

    store = MemoryStore()
    request = ApprovalRequest(run_id=RUN, model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                              evidence_digest="cd" * 32,
                              # nobody holds compliance: the request stays open whatever the examples decide
                              required_roles={"security": 1, "business": 1, "compliance": 1},
                              excluded_principals=["dana"], initiator="dana", channels=[Channel.SLACK, Channel.JIRA],
                              deadline=utcnow() + timedelta(hours=1), opened_at=utcnow() - timedelta(minutes=5),
                              initiator_assurance=Assurance.VERIFIED)
    open_record(store, request)
    record_key = approvals_key("churn", "1.0.0", RUN)
    store.put_if_absent(run_index_key(RUN), json.dumps({"record": record_key, "model": "churn",
                                                        "version": "1.0.0"}).encode())
    store.put_if_absent(jira_state_key("churn", "1.0.0", RUN), json.dumps(
        {"run_id": RUN, "issue_key": "CLR-1", "issue_id": ISSUE_ID, "artifact_digest": DIGEST, "queue": []}).encode())

    told: list[str] = []

    class Interactions(SlackInteractions):
        def tell(self, user_id, channel, thread_ts, text, payload) -> None:  # no response_url is ever fetched
            told.append(text)

    slack_settings = SlackSettings(signing_secret=SLACK_SECRET, bot_token="xoxb-offline", team_id=TEAM_ID,
                                   email_fallback=True, max_retries=0)
    interactions = Interactions(slack_settings, store=store, principals=PRINCIPALS, client=OfflineSlack())
    jira_settings = JiraSettings(webhook_secret=JIRA_SECRET, email_fallback=True)  # no URL: nothing to call
    app = Starlette(routes=[*slack_routes(slack_settings, interactions),
                            *jira_routes(jira_settings, store, PRINCIPALS)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tasks.approval_intake.wake_run", lambda run_id: True)
        patch.setattr("tasks.approval_intake.publish_event", lambda event: [])
        patch.setattr("tasks.jira_approvals._bot_identities", lambda *a: frozenset({"acc-bot"}))
        yield {"client": TestClient(app), "store": store, "record_key": record_key, "told": told}


def now_ms() -> int:
    return int(time.time() * 1000)


def jira_signature(body: bytes) -> str:
    from clearance.app.serve.jira_routes import signature_for

    return signature_for(JIRA_SECRET, body)


def check(response) -> None:
    """Below 500; a refusal says why in a short JSON ``error``."""
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error, str) and 0 < len(error) <= 250, error


# --------------------------------------------------------------------------- the cases of the finding


@pytest.mark.parametrize("header", [
    "sha256=é" + "0" * 63, "sha256=" + "ü" * 64, "sha256=\u00ff", "\u00e9t\u00e9", "sha256=" + "0" * 64 + "\u00a0"])
def test_a_non_ascii_hub_signature_is_a_401(apps, header):
    body = json.dumps({"timestamp": now_ms()}).encode()
    response = apps["client"].post("/jira/webhook", content=body,
                                   headers={"X-Hub-Signature": header.encode("latin-1")})
    assert response.status_code == 401 and response.json() == {"error": "invalid signature"}


@pytest.mark.parametrize("payload, field", [
    ({"issue": "x"}, "issue"),
    ({"issue": {"fields": {"labels": "clearance-run-x"}}}, "issue.fields.labels"),
    ({"issue": {"fields": "x"}}, "issue.fields"),
    ({"changelog": {"items": "status"}}, "changelog.items"),
    ({"changelog": {"items": ["status"]}}, "changelog.items.0"),
    ({"changelog": {"items": [{"field": "status", "toString": 7}]}}, "changelog.items.0.toString"),
    ({"user": ["acc-sam"]}, "user"),
    ({"user": {"accountId": 5}}, "user.accountId"),
    ({"timestamp": "soon"}, "timestamp"),
    ({"timestamp": True}, "timestamp"),
    ({"timestamp": 1.5}, "timestamp"),
])
def test_a_signed_jira_body_with_a_wrongly_typed_field_is_a_400_naming_it(apps, payload, field):
    body = json.dumps({"timestamp": now_ms()} | payload).encode()
    response = apps["client"].post("/jira/webhook", content=body, headers={"X-Hub-Signature": jira_signature(body)})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"bad payload: {field}:")


@pytest.mark.parametrize("payload, field", [
    ({"type": "block_actions", "actions": "clearance_approve"}, "actions"),
    ({"type": "block_actions", "actions": [5]}, "actions.0"),
    ({"type": "block_actions", "actions": [{"action_id": APPROVE_ACTION, "value": {"run": RUN}}]},
     "actions.0.value"),
    ({"type": "block_actions", "user": "U0SAM000002", "actions": [{"action_id": APPROVE_ACTION}]}, "user"),
    ({"type": "block_actions", "team": ["T0"], "actions": []}, "team"),
    ({"type": "view_submission", "view": {"callback_id": REJECT_MODAL, "state": "x"}}, "view.state"),
    ({"type": "view_submission", "view": {"callback_id": REJECT_MODAL, "state": {"values": {"reason": 1}}}},
     "view.state.values.reason"),
    ({"type": "view_submission", "view": []}, "view"),
    ({"type": 7}, "type"),
    ({"actions": []}, "type"),
])
def test_a_signed_slack_payload_with_a_wrongly_typed_field_is_a_400_naming_it(apps, payload, field):
    body = form_body(payload)
    response = apps["client"].post("/slack/interactions", content=body, headers=sign(SLACK_SECRET, body))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"bad payload: {field}:")


@pytest.mark.parametrize("path", ["/slack/interactions", "/jira/webhook"])
def test_deeply_nested_signed_json_is_a_400(apps, path):
    nested = "[" * 50_000 + "]" * 50_000
    if path == "/jira/webhook":
        body = nested.encode()
        headers = {"X-Hub-Signature": jira_signature(body)}
    else:
        body = urlencode({"payload": nested}).encode()
        headers = sign(SLACK_SECRET, body)
    response = apps["client"].post(path, content=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"].startswith("bad payload")


def test_a_huge_webhook_timestamp_is_refused_not_overflowed(apps):
    body = json.dumps({"timestamp": int("9" * 4000)}).encode()
    response = apps["client"].post("/jira/webhook", content=body, headers={"X-Hub-Signature": jira_signature(body)})
    assert response.status_code == 401 and "replay window" in response.json()["error"]


# --------------------------------------------------------------------------- anything at all

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15)
HEADER_VALUE = (st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80).map(
    lambda s: s.encode("latin-1")) | st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40).map(
    lambda s: s.encode("utf-8")))
BYTES = st.binary(max_size=400)


def either(*values: Any) -> st.SearchStrategy[Any]:
    """One of ``values`` (what clearance looks for) or any JSON at all (what it must survive)."""
    return st.sampled_from(values) | JSON


def fields(**optional: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An object with any subset of these fields — or anything else in its place."""
    return st.fixed_dictionaries({}, optional=optional) | JSON


SLACK_PAYLOADS = fields(
    type=either("block_actions", "view_submission", "shortcut"),
    user=fields(id=either(SAM, "U0NOBODY01", "U0DANA00001"), team_id=either(TEAM_ID, "T0OTHER0002")),
    team=fields(id=either(TEAM_ID, "T0OTHER0002")),
    channel=fields(id=either("C0123456789")),
    container=fields(channel_id=either("C0123456789"), message_ts=either("1700000000.000100")),
    message=fields(ts=either("1700000000.000100"), thread_ts=either("1700000000.000001")),
    actions=st.lists(fields(action_id=either(APPROVE_ACTION, REJECT_ACTION),
                            value=either(button_value(RUN, DIGEST), button_value("nope", DIGEST), "{}", "[1]", ""),
                            action_ts=either("1700000000.123456")), max_size=3) | JSON,
    view=fields(callback_id=either(REJECT_MODAL), id=either("V0123ABC"),
                private_metadata=either(json.dumps({"run": RUN, "digest": DIGEST}), "[]", "{", '{"run": 1}'),
                state=fields(values=either({"reason": {"reason_input": {"value": "no KPI"}}},
                                           {"reason": {"reason_input": {"value": "  "}}}))),
    trigger_id=either("1.2.3"), response_url=either("not a url"), response_urls=JSON,
)

JIRA_PAYLOADS = fields(
    timestamp=st.builds(now_ms) | st.integers() | JSON,
    webhookEvent=either("jira:issue_updated"),
    user=fields(accountId=either("acc-sam", "acc-bot", "acc-nobody"), key=either("acc-sam"),
                name=either("sam"), emailAddress=either("rita@example.com", "sam@example.com"),
                displayName=either("Sam")),
    issue=fields(id=either(ISSUE_ID, "10999", 10100), key=either("CLR-1", "CLR-9"),
                 fields=fields(labels=st.lists(either("clearance", f"clearance-run-{RUN}", "clearance-run-"),
                                               max_size=3) | JSON)),
    changelog=fields(id=either("20001", 20002) | st.text(max_size=6),
                     items=st.lists(fields(field=either("status"), fieldId=either("status"),
                                           fromString=either("Awaiting approval"),
                                           toString=either("Approved", "Rejected")), max_size=3) | JSON),
)


@st.composite
def slack_requests(draw) -> tuple[bytes, dict[str, bytes | str]]:
    body = draw(st.one_of(
        SLACK_PAYLOADS.map(form_body),
        JSON.map(lambda value: urlencode({"payload": json.dumps(value)}).encode()),
        st.text(max_size=60).map(lambda text: urlencode({"payload": text}).encode()),
        BYTES))
    how = draw(st.sampled_from(["signed", "signed", "signed", "stale", "garbage", "none"]))
    headers: dict[str, bytes | str] = {"Content-Type": "application/x-www-form-urlencoded"}
    if how == "signed":
        headers |= sign(SLACK_SECRET, body)
    elif how == "stale":
        headers |= sign(SLACK_SECRET, body, draw(st.integers(min_value=-(10 ** 15), max_value=10 ** 15)))
    elif how == "garbage":
        headers |= {"X-Slack-Request-Timestamp": draw(HEADER_VALUE), "X-Slack-Signature": draw(HEADER_VALUE)}
    return body, headers


@st.composite
def jira_requests(draw) -> tuple[bytes, dict[str, bytes | str]]:
    body = draw(st.one_of(JIRA_PAYLOADS.map(lambda p: json.dumps(p).encode()),
                          JSON.map(lambda value: json.dumps(value).encode()), BYTES))
    how = draw(st.sampled_from(["signed", "signed", "signed", "garbage", "none"]))
    headers: dict[str, bytes | str] = {"Content-Type": "application/json"}
    if how == "signed":
        headers["X-Hub-Signature"] = jira_signature(body)
    elif how == "garbage":
        headers["X-Hub-Signature"] = draw(HEADER_VALUE | HEADER_VALUE.map(lambda v: b"sha256=" + v))
    return body, headers


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=st.one_of(slack_requests().map(lambda r: ("/slack/interactions", *r)),
                         jira_requests().map(lambda r: ("/jira/webhook", *r))))
def test_no_request_makes_serve_answer_500(apps, request):
    path, body, headers = request
    response = apps["client"].post(path, content=body, headers=headers)
    check(response)  # a 4xx with a short reason (see check)
    assert response.status_code < 500, (path, response.status_code, response.text[:200])


def test_the_property_reaches_the_approval_intake(apps):
    """The drawn requests are not all refused at the door: well-aimed ones are decided on (or refused) and recorded."""
    from tasks.approvals_record import read_record

    client = apps["client"]
    body = form_body({"type": "block_actions", "user": {"id": "U0NOBODY01", "team_id": TEAM_ID},
                      "team": {"id": TEAM_ID}, "channel": {"id": "C0123456789"},
                      "actions": [{"action_id": APPROVE_ACTION, "value": button_value(RUN, DIGEST),
                                   "action_ts": f"{time.time():.6f}"}]})
    check(client.post("/slack/interactions", content=body, headers=sign(SLACK_SECRET, body)))
    delivery = {"timestamp": now_ms(), "user": {"accountId": "acc-nobody"},
                "issue": {"id": ISSUE_ID, "key": "CLR-1", "fields": {"labels": [f"clearance-run-{RUN}"]}},
                "changelog": {"id": f"{time.time_ns()}", "items": [{"field": "status", "toString": "Approved"}]}}
    body = json.dumps(delivery).encode()
    response = client.post("/jira/webhook", content=body, headers={"X-Hub-Signature": jira_signature(body)})
    check(response)
    assert response.json()["results"] == ["refused: unknown_principal"]
    record = read_record(apps["store"], apps["record_key"])[0]
    assert {(r.channel.value, r.identity) for r in record.refusals} >= {
        ("slack", f"slack:{TEAM_ID}/U0NOBODY01"), ("jira", "jira:acc-nobody")}

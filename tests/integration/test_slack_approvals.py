"""Slack approvals end to end: real promotion runs (Prefect + SeaweedFS), a local Slack, `clearance serve`.

The runs are `clearance promote --direct` subprocesses with ``CLEARANCE_SLACK_*`` pointing at the
fake Slack (tests/fakes/slack_server.py), so the flow posts the thread and the approval message
for real. Clicks reach the real ASGI app (clearance.app.serve.app) as Slack sends them: form-encoded
``payload=``, signed with the v0 algorithm. One run per outcome, several assertions per run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.slack_server import (
    TEAM_ID,
    AsgiThread,
    FakeSlack,
    block_actions,
    button,
    form_body,
    sign,
    view_submission,
)
from tests.integration.promotion_kit import (
    PRINCIPALS,
    cli,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration

CHANNEL = "C0123456789"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_IDS = {p["id"]: p["slack_id"] for p in PRINCIPALS}
BEA_BY_EMAIL = "U0BEAOTHER9"  # a Slack account not in principals.yaml whose e-mail is bea's (never bea)
STRANGER = "U0NOBODY001"  # a workspace member who is no principal


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    users: dict[str, str | None] = {p["slack_id"]: p["email"] for p in PRINCIPALS}
    users |= {BEA_BY_EMAIL: "Bea@Example.com", STRANGER: None}
    fake = FakeSlack(channels=(CHANNEL,), users=users).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def slack_world(s3_service, prefect_service, fake_slack, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One candidate (three versions → three runs), Slack env for every process, and `clearance serve` up."""
    from clearance.app.serve.app import build_app
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    get_settings.cache_clear()
    s3 = ObjectStore.from_settings(get_settings())
    cand = make_candidate(tmp_path_factory.mktemp("slack"), s3, versions=("1.0.0", "2.0.0", "3.0.0"))
    patch = pytest.MonkeyPatch()
    for name, value in fake_slack.env(CHANNEL, SECRET).items():
        patch.setenv(name, value)
    patch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    get_settings.cache_clear()
    serve = AsgiThread(build_app())
    try:
        yield {"s3": s3, "cand": cand, "serve": serve, "http": httpx.Client(base_url=serve.url, timeout=10)}
    finally:
        serve.stop()
        patch.undo()
        get_settings.cache_clear()


# --------------------------------------------------------------------------- helpers


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def record(world, run_id: str, version: str):
    from clearance.core.keys import approvals_key
    from tasks.approvals_record import read_record

    return read_record(world["s3"], approvals_key(world["cand"].model, version, run_id))[0]


def slack_state(world, run_id: str, version: str) -> dict[str, Any]:
    from clearance.core.keys import slack_state_key

    return world["s3"].get_json(slack_state_key(world["cand"].model, version, run_id))


def approval_message(fake: FakeSlack, state: dict[str, Any]) -> dict[str, Any]:
    (only,) = state["approvals"]
    return fake.messages[(only["channel"], only["ts"])]


def post_signed(world, payload: dict[str, Any], *, timestamp: int | str | None = None,
                secret: str = SECRET) -> tuple[httpx.Response, bytes, dict[str, str]]:
    body = form_body(payload)
    headers = sign(secret, body, timestamp)
    started = time.monotonic()
    response = world["http"].post("/slack/interactions", content=body, headers=headers)
    assert time.monotonic() - started < 3, "Slack needs the ack within 3 s"
    return response, body, headers


def click(world, fake: FakeSlack, user: str, state: dict[str, Any], action_id: str = "clearance_approve"):
    message = approval_message(fake, state)
    found = button(message["blocks"], action_id)
    assert found is not None, f"no {action_id} button on the approval message"
    payload = block_actions(fake, user=user, channel=message["channel"], message_ts=message["ts"],
                            action_id=action_id, value=found["value"])
    return (*post_signed(world, payload), payload)


def ephemeral_to(fake: FakeSlack, user: str, contains: str, timeout: float = 30, since: int = 0) -> dict[str, Any]:
    return wait_for(lambda: next((e for e in fake.ephemerals[since:] if e.get("user") == user
                                  and contains in e["text"]), None), timeout,
                    f"ephemeral to {user} containing {contains!r}")


# --------------------------------------------------------------------------- tests


def test_thread_approval_message_and_quorum_across_slack_and_cli(slack_world, fake_slack, tmp_path):
    world, fake = slack_world, fake_slack
    cand = world["cand"]
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(world["s3"], run_id)
    state = wait_for(lambda: (s := slack_state(world, run_id, "1.0.0")).get("approvals") and s, 30,
                     "approval message")

    # The thread: one parent per promotion, the gate result and the approval message as replies.
    parent = fake.messages[(CHANNEL, state["parent_ts"])]
    assert cand.model in parent["text"] and "1.0.0" in parent["text"] and "dana" in parent["text"]
    replies = fake.thread(CHANNEL, state["parent_ts"])
    assert any("artifact_integrity" in r["text"] for r in replies)
    message = approval_message(fake, state)
    assert message["thread_ts"] == state["parent_ts"] and message["reply_broadcast"]
    approve = button(message["blocks"], "clearance_approve")
    assert json.loads(approve["value"]) == {"run": run_id,
                                            "digest": record(world, run_id, "1.0.0").request.artifact_digest}
    summary = json.dumps(message["blocks"])
    assert "artifact_integrity" in summary and "security" in summary and "business" in summary
    assert button(message["blocks"], "clearance_reject") is not None

    # Bad signatures: 401, and nothing recorded at all.
    payload = block_actions(fake, user=SLACK_IDS["sam"], channel=CHANNEL, message_ts=message["ts"],
                            action_id="clearance_approve", value=approve["value"])
    assert post_signed(world, payload, secret="not-the-secret")[0].status_code == 401
    assert post_signed(world, payload, timestamp=int(time.time()) - 301)[0].status_code == 401
    assert post_signed(world, payload, timestamp="12345abc")[0].status_code == 401
    unsigned = world["http"].post("/slack/interactions", content=form_body(payload),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    time.sleep(0.5)
    untouched = record(world, run_id, "1.0.0")
    assert not untouched.decisions and not untouched.refusals

    # Refusals are told to the clicker (ephemeral) and recorded.
    assert click(world, fake, SLACK_IDS["dana"], state)[0].status_code == 200
    assert "initiated this promotion" in ephemeral_to(fake, SLACK_IDS["dana"], "not counted")["text"]
    click(world, fake, SLACK_IDS["carl"], state)
    assert "none of the required roles" in ephemeral_to(fake, SLACK_IDS["carl"], "not counted")["text"]
    click(world, fake, STRANGER, state)
    assert "not a known principal" in ephemeral_to(fake, STRANGER, "not counted")["text"]

    # A valid approval counts; the same signed request replayed, and a double click, count once.
    response, body, headers = click(world, fake, SLACK_IDS["sam"], state)[:3]
    assert response.status_code == 200
    ephemeral_to(fake, SLACK_IDS["sam"], "was counted")
    replay = world["http"].post("/slack/interactions", content=body, headers=headers)
    assert replay.status_code == 200
    click(world, fake, SLACK_IDS["sam"], state)
    ephemeral_to(fake, SLACK_IDS["sam"], "already decided")
    time.sleep(0.5)
    rec = record(world, run_id, "1.0.0")
    assert [(d.principal, d.channel.value) for d in rec.decisions] == [("sam", "slack")]
    sam = rec.decisions[0]
    assert sam.channel_evidence["slack_user_id"] == SLACK_IDS["sam"] and sam.dedupe_key.startswith("slack:")
    # A pinned slack_id in the configured workspace (CLEARANCE_SLACK_TEAM_ID) is a verified identity.
    assert sam.assurance.value == "verified" and sam.identity == f"slack:{TEAM_ID}/{SLACK_IDS['sam']}"
    assert {r.reason.value for r in rec.refusals} == {"self_approval", "missing_role", "unknown_principal",
                                                      "already_counted"}
    # The tally is updated in place; the buttons stay while the request is open.
    message = wait_for(lambda: "sam" in json.dumps(approval_message(fake, state)["blocks"])
                       and approval_message(fake, state), 15, "tally with sam")
    assert button(message["blocks"], "clearance_approve") is not None
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"

    # The quorum is completed in another channel (the real CLI): the run resumes and promotes.
    done = cli(cand, "bea", "approve", run_id, "--comment", "KPI reviewed")
    assert done.returncode == 0, done.stderr
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]

    # Every message that offered the decision shows the outcome; no button is left.
    message = approval_message(fake, state)
    assert button(message["blocks"], "clearance_approve") is None
    assert button(message["blocks"], "clearance_reject") is None
    shown = json.dumps(message["blocks"])
    assert "Approved" in shown and "bea" in shown and "sam" in shown and "artifact_integrity" in shown
    assert "promoted" in fake.messages[(CHANNEL, state["parent_ts"])]["text"]

    # A stale button (an old copy of the message) is refused: the request is closed.
    payload = block_actions(fake, user=SLACK_IDS["sol"], channel=CHANNEL, message_ts=message["ts"],
                            action_id="clearance_approve", value=approve["value"])
    post_signed(world, payload)
    assert "closed" in ephemeral_to(fake, SLACK_IDS["sol"], "not counted")["text"]
    assert len(record(world, run_id, "1.0.0").decisions) == 2
    assert fake.violations == []


def test_reject_through_the_modal_fails_the_run_and_updates_messages(slack_world, fake_slack, tmp_path):
    world, fake = slack_world, fake_slack
    cand = world["cand"]
    proc = start_direct_run(cand, "2.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "2.0.0")
    wait_for_request(world["s3"], run_id)
    state = wait_for(lambda: (s := slack_state(world, run_id, "2.0.0")).get("approvals") and s, 30,
                     "approval message")
    opened_before = len(fake.views)

    # Reject opens a modal (views.open with the click's trigger id), asking for a reason.
    response, _, _, payload = click(world, fake, BEA_BY_EMAIL, state, "clearance_reject")
    assert response.status_code == 200
    view = wait_for(lambda: len(fake.views) > opened_before and fake.views[-1], 15, "reject modal")
    assert view["callback_id"] == "clearance_reject_modal"
    assert any(b.get("type") == "input" and b["block_id"] == "reason" for b in view["blocks"])
    assert not record(world, run_id, "2.0.0").decisions  # opening the dialog decides nothing

    # An empty reason is refused by the modal itself, synchronously.
    empty = post_signed(world, view_submission(fake, user=BEA_BY_EMAIL, view=view, reason="  "))[0]
    assert empty.status_code == 200 and empty.json()["response_action"] == "errors"

    # A reason from an account that only shares bea's e-mail: bea's pinned slack_id is the only way to be bea.
    told = len(fake.ephemerals)
    post_signed(world, view_submission(fake, user=BEA_BY_EMAIL, view=view, reason="no KPI baseline"))
    assert "not a known principal" in ephemeral_to(fake, BEA_BY_EMAIL, "not counted", since=told)["text"]
    rec = record(world, run_id, "2.0.0")
    assert not rec.decisions and [r.reason.value for r in rec.refusals] == ["unknown_principal"]

    # bea herself rejects with a reason → counted → the run fails.
    opened_before = len(fake.views)
    click(world, fake, SLACK_IDS["bea"], state, "clearance_reject")
    view = wait_for(lambda: len(fake.views) > opened_before and fake.views[-1], 15, "bea's reject modal")
    submitted = post_signed(world, view_submission(fake, user=SLACK_IDS["bea"], view=view,
                                                   reason="no KPI baseline"))[0]
    assert submitted.status_code == 200 and not submitted.content
    assert finish(proc) != 0
    assert wait_state(run_id, {"FAILED"}) == "FAILED"
    rec = record(world, run_id, "2.0.0")
    assert [(d.principal, d.vote.value, d.comment) for d in rec.decisions] == [("bea", "reject", "no KPI baseline")]
    assert rec.decisions[0].assurance.value == "verified"
    assert rec.outcome.value == "rejected"

    message = approval_message(fake, state)
    shown = json.dumps(message["blocks"])
    assert button(message["blocks"], "clearance_approve") is None and "Rejected" in shown
    assert "no KPI baseline" in shown
    parent = fake.messages[(CHANNEL, state["parent_ts"])]
    assert "rejected" in parent["text"]
    assert not world["s3"].list_keys(f"production/{cand.model}/2.0.0/")
    assert fake.violations == []


def test_socket_mode_delivery_and_rate_limits(slack_world, fake_slack, tmp_path):
    from clearance.app.serve.slack_socket import SocketModeListener
    from clearance.settings.slack import SlackSettings

    world, fake = slack_world, fake_slack
    cand = world["cand"]
    listener = SocketModeListener(SlackSettings()).connect()
    try:
        assert fake.wait_socket(10)
        proc = start_direct_run(cand, "3.0.0", log=tmp_path / "run.log")
        run_id = find_run(cand.model, "3.0.0")
        wait_for_request(world["s3"], run_id)
        state = wait_for(lambda: (s := slack_state(world, run_id, "3.0.0")).get("approvals") and s, 30,
                         "approval message")
        message = approval_message(fake, state)
        value = button(message["blocks"], "clearance_approve")["value"]
        wait_for(lambda: "waiting for sign-off" in fake.messages[(CHANNEL, state["parent_ts"])]["text"], 15,
                 "the flow's last update of the parent")

        # Slack rate-limits the next update: the client waits Retry-After, then succeeds.
        fake.inject("chat.update", status=429, retry_after=1)
        updates_before = len(fake.calls_of("chat.update"))
        told_before = len(fake.ephemerals)
        started = time.monotonic()
        ack = fake.deliver_socket(block_actions(fake, user=SLACK_IDS["sam"], channel=CHANNEL,
                                                message_ts=message["ts"], action_id="clearance_approve", value=value))
        assert time.monotonic() - started < 3 and "envelope_id" in ack
        ephemeral_to(fake, SLACK_IDS["sam"], "was counted", since=told_before)
        updates = fake.calls_of("chat.update")[updates_before:]
        limited = next(i for i, c in enumerate(updates) if c.status == 429)
        assert updates[limited + 1].status == 200 and updates[limited + 1].at - updates[limited].at >= 1.0

        fake.deliver_socket(block_actions(fake, user=SLACK_IDS["bea"], channel=CHANNEL, message_ts=message["ts"],
                                          action_id="clearance_approve", value=value))
        assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
        rec = record(world, run_id, "3.0.0")
        assert sorted((d.principal, d.channel.value) for d in rec.decisions) == [("bea", "slack"), ("sam", "slack")]
        message = approval_message(fake, state)
        assert button(message["blocks"], "clearance_approve") is None and "Approved" in json.dumps(message["blocks"])
        assert fake.violations == []
    finally:
        listener.close()


@pytest.mark.parametrize("how", ["refresh", "drop"])
def test_socket_mode_reconnects_when_slack_refreshes_or_drops_the_link(slack_world, fake_slack, how):
    """Slack refreshes Socket Mode links every few hours and may cut one without warning; the
    listener opens a new link (a fresh ``apps.connections.open``) and clicks keep arriving."""
    from clearance.app.serve.slack_socket import SocketModeListener
    from clearance.settings.slack import SlackSettings

    fake = fake_slack
    listener = SocketModeListener(SlackSettings()).connect()
    try:
        assert fake.wait_socket(10)
        opened, links = len(fake.calls_of("apps.connections.open")), fake.socket_links
        fake.end_socket(how)
        wait_for(lambda: fake.socket_links > links and fake.live_socket_links >= 1, 30, "a new Socket Mode link")
        assert len(fake.calls_of("apps.connections.open")) > opened
        told = len(fake.ephemerals)
        click = block_actions(fake, user=SLACK_IDS["sam"], channel=CHANNEL, message_ts="1700000000.000100",
                              action_id="clearance_approve", value="not-a-decision")
        ack = wait_for(lambda: _try_deliver(fake, click), 30, "an acknowledged click on the new link")
        assert "envelope_id" in ack
        ephemeral_to(fake, SLACK_IDS["sam"], "not a clearance decision", since=told)
        assert fake.violations == []
    finally:
        listener.close()


def _try_deliver(fake: FakeSlack, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Deliver on the newest link; None while the old link is still the one being closed."""
    try:
        return fake.deliver_socket(payload, timeout=3)
    except (RuntimeError, TimeoutError):
        return None

"""Finding 5 (Slack): who clicked is the pinned Slack id in the configured workspace, not an e-mail.

The attack: a user of another workspace, reaching the approval message through Slack Connect,
sets their e-mail to an approver's. clearance looked the clicker up by ``users.info`` e-mail
and counted the click as that approver, although the approver has a pinned ``slack_id``.

Each test drives the real ``/slack/interactions`` route (Starlette TestClient; the request is
signed as Slack signs it) with the real slack-sdk client talking to the local Slack
(``tests/fakes/slack_server.py``), and an in-memory approvals record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clearance.approvals import ApprovalRequest, RefusalReason
from clearance.config.schema import Assurance, Channel, Principals
from clearance.core.clock import utcnow
from clearance.core.keys import approvals_key, run_index_key
from clearance.render.slack_messages import APPROVE_ACTION, REJECT_ACTION, button_value, reject_modal
from clearance.settings.slack import SlackSettings
from tests.fakes.memory_store import MemoryStore
from tests.fakes.slack_server import TEAM_ID, FakeSlack, block_actions, form_body, sign, view_submission

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0123456789"
DIGEST = "ab" * 32
OTHER_TEAM = "T0OTHER0002"

SAM = "U0SAM000002"  # security, pinned
BEA = "U0BEA000004"  # business, pinned
RITA = "U0RITA00007"  # business, no slack_id pinned: only her e-mail names her
MALLORY = "U0MALLORY01"  # another workspace (Slack Connect), e-mail set to bea's
BEA_TWIN = "U0BEATWIN09"  # a second account in our workspace with bea's e-mail
RITA_UNCONFIRMED = "U0RITANOT08"  # claims rita's e-mail, which Slack has not confirmed

PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "dana", "email": "dana@example.com", "slack_id": "U0DANA00001", "roles": []},
    {"id": "sam", "email": "sam@example.com", "slack_id": SAM, "roles": ["security"]},
    {"id": "bea", "email": "bea@example.com", "slack_id": BEA, "roles": ["business"]},
    {"id": "rita", "email": "rita@example.com", "roles": ["business"]},
]})


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    users: dict[str, str | None] = {"U0DANA00001": "dana@example.com", SAM: "sam@example.com",
                                    BEA: "bea@example.com", RITA: "rita@example.com", MALLORY: "bea@example.com",
                                    BEA_TWIN: "Bea@Example.com", RITA_UNCONFIRMED: "rita@example.com"}
    slack = FakeSlack(channels=(CHANNEL,), users=users, user_teams={MALLORY: OTHER_TEAM},
                      unconfirmed=(RITA_UNCONFIRMED,)).start()
    yield slack
    slack.stop()


@pytest.fixture(autouse=True)
def quiet_intake(monkeypatch):
    """No Prefect run to wake and no channel to update: only the approvals record matters here."""
    monkeypatch.setattr("tasks.approval_intake.wake_run", lambda run_id: True)
    monkeypatch.setattr("tasks.approval_intake.publish_event", lambda event: [])


class World:
    """One open approval request, the serve route in front of it, and the local Slack behind it."""

    def __init__(self, fake: FakeSlack, *, team_id: str | None = TEAM_ID, email_fallback: bool = False,
                 assurance: Assurance = Assurance.CLAIMED) -> None:
        from clearance.app.serve.slack_interactions import SlackInteractions
        from clearance.app.serve.slack_routes import routes
        from tasks.approvals_record import open_record

        self.fake = fake
        self.store = MemoryStore()
        self.run_id = f"run-{uuid.uuid4().hex[:12]}"
        request = ApprovalRequest(run_id=self.run_id, model="churn", version="1.0.0", tier="high",
                                  artifact_digest=DIGEST, evidence_digest="cd" * 32,
                                  required_roles={"security": 1, "business": 1}, excluded_principals=["dana"],
                                  initiator="dana", channels=[Channel.SLACK, Channel.CLI],
                                  deadline=utcnow() + timedelta(hours=1), assurance=assurance,
                                  initiator_assurance=Assurance.VERIFIED)
        open_record(self.store, request)
        self.record_key = approvals_key("churn", "1.0.0", self.run_id)
        self.store.put_if_absent(run_index_key(self.run_id), json.dumps(
            {"record": self.record_key, "model": "churn", "version": "1.0.0"}).encode())
        self.settings = SlackSettings(bot_token=fake.bot_token, signing_secret=SECRET, base_url=fake.base_url,
                                      team_id=team_id, email_fallback=email_fallback, max_retries=0)
        self.interactions = SlackInteractions(self.settings, store=self.store, principals=PRINCIPALS)
        self.http = TestClient(Starlette(routes=routes(self.settings, self.interactions)))

    def post(self, payload: dict[str, Any]) -> int:
        body = form_body(payload)
        return self.http.post("/slack/interactions", content=body, headers=sign(SECRET, body)).status_code

    def click(self, user: str, action: str = APPROVE_ACTION, **teams: str) -> int:
        payload = block_actions(self.fake, user=user, channel=CHANNEL, message_ts="1700000000.000100",
                                action_id=action, value=button_value(self.run_id, DIGEST), **teams)
        return self.post(payload)

    def record(self):
        from tasks.approvals_record import read_record

        return read_record(self.store, self.record_key)[0]

    def told(self, user: str) -> list[str]:
        return [e["text"] for e in self.fake.ephemerals if e.get("user") == user]


# --------------------------------------------------------------------------- the attack of finding 5


@pytest.mark.parametrize("team_id, email_fallback", [(TEAM_ID, False), (TEAM_ID, True), (None, False), (None, True)])
def test_a_slack_connect_user_with_an_approvers_email_is_never_that_approver(fake, team_id, email_fallback):
    world = World(fake, team_id=team_id, email_fallback=email_fallback)
    users_info_before = len(fake.calls_of("users.info"))
    assert world.click(MALLORY) == 200

    record = world.record()
    assert record.decisions == []  # before the fix: counted as bea
    (refusal,) = record.refusals
    assert refusal.reason is RefusalReason.UNKNOWN_PRINCIPAL and refusal.principal is None
    assert refusal.identity == f"slack:{OTHER_TEAM}/{MALLORY}"
    if team_id is not None:  # the configured workspace refuses them before anyone is looked up
        assert refusal.channel_evidence["refused"] == "foreign_workspace"
        assert len(fake.calls_of("users.info")) == users_info_before
        assert any(OTHER_TEAM in text and "not counted" in text for text in world.told(MALLORY))
    assert fake.violations == []


@pytest.mark.parametrize("where", ["team.id", "user.team_id"])
def test_an_interaction_naming_another_workspace_anywhere_is_refused_and_recorded(fake, where):
    # In a shared channel the click may happen in our workspace (team.id) by a user of another (user.team_id).
    teams = {"team": OTHER_TEAM, "user_team": TEAM_ID} if where == "team.id" else \
        {"team": TEAM_ID, "user_team": OTHER_TEAM}
    world = World(fake, email_fallback=True)
    assert world.click(SAM, **teams) == 200  # even sam's own id, seen through another workspace
    record = world.record()
    assert record.decisions == []
    assert [r.channel_evidence["refused"] for r in record.refusals] == ["foreign_workspace"]
    assert any(where in text for text in world.told(SAM))


def test_a_reject_from_another_workspace_opens_no_dialog_and_is_recorded(fake):
    world = World(fake)
    views_before = len(fake.calls_of("views.open"))
    assert world.click(MALLORY, REJECT_ACTION) == 200
    assert len(fake.calls_of("views.open")) == views_before
    (refusal,) = world.record().refusals
    assert refusal.vote.value == "reject" and refusal.channel_evidence["refused"] == "foreign_workspace"

    # A submitted dialog (however it was opened) from another workspace is refused too.
    view = reject_modal(world.run_id, DIGEST, model="churn", version="1.0.0", channel=CHANNEL, thread_ts=None)
    view = dict(view, id="V0FOREIGN01")
    assert world.post(view_submission(fake, user=MALLORY, view=view, reason="looks wrong")) == 200
    record = world.record()
    assert record.decisions == [] and len(record.refusals) == 2
    assert record.outcome.value == "pending"


# --------------------------------------------------------------------------- what counts, and how sure it is


def test_a_pinned_slack_id_in_the_configured_workspace_is_verified(fake):
    world = World(fake, assurance=Assurance.VERIFIED)
    assert world.click(SAM) == 200
    (decision,) = world.record().decisions
    assert decision.principal == "sam" and decision.assurance is Assurance.VERIFIED
    assert decision.identity == f"slack:{TEAM_ID}/{SAM}"
    assert decision.channel_evidence["matched_by"] == "slack_id"
    assert decision.proof is not None and decision.proof.kind == "service"


def test_without_a_configured_workspace_a_pinned_id_is_only_claimed(fake):
    world = World(fake, team_id=None, assurance=Assurance.VERIFIED)
    assert world.click(SAM) == 200
    record = world.record()
    assert record.decisions == []
    assert [r.reason for r in record.refusals] == [RefusalReason.ASSURANCE_TOO_LOW]
    claimed = World(fake, team_id=None)  # a claimed-assurance tier still takes it, as claimed
    assert claimed.click(SAM) == 200
    assert [d.assurance for d in claimed.record().decisions] == [Assurance.CLAIMED]


def test_email_lookup_is_off_by_default(fake):
    world = World(fake)
    calls = len(fake.calls_of("users.info"))
    assert world.click(RITA) == 200
    assert [r.reason for r in world.record().refusals] == [RefusalReason.UNKNOWN_PRINCIPAL]
    assert len(fake.calls_of("users.info")) == calls  # nobody was looked up by e-mail


def test_email_fallback_never_reaches_a_principal_with_a_pinned_slack_id(fake):
    world = World(fake, email_fallback=True)
    assert world.click(BEA_TWIN) == 200  # same workspace, bea's e-mail (other case), not bea's pinned id
    record = world.record()
    assert record.decisions == [] and [r.reason for r in record.refusals] == [RefusalReason.UNKNOWN_PRINCIPAL]


def test_email_fallback_needs_the_configured_workspace(fake):
    # Without CLEARANCE_SLACK_TEAM_ID any workspace's account could carry rita's e-mail: nobody is matched by it.
    world = World(fake, team_id=None, email_fallback=True)
    calls = len(fake.calls_of("users.info"))
    assert world.click(RITA) == 200
    assert [r.reason for r in world.record().refusals] == [RefusalReason.UNKNOWN_PRINCIPAL]
    assert len(fake.calls_of("users.info")) == calls


def test_email_fallback_needs_a_confirmed_email(fake):
    world = World(fake, email_fallback=True)
    assert world.click(RITA_UNCONFIRMED) == 200
    record = world.record()
    assert record.decisions == [] and [r.reason for r in record.refusals] == [RefusalReason.UNKNOWN_PRINCIPAL]
    assert fake.violations == []  # users.info answered with is_email_confirmed, as Slack does


def test_email_fallback_is_claimed_and_a_verified_tier_refuses_it(fake):
    world = World(fake, email_fallback=True)
    assert world.click(RITA) == 200
    (decision,) = world.record().decisions
    assert (decision.principal, decision.assurance) == ("rita", Assurance.CLAIMED)
    assert decision.channel_evidence["matched_by"] == "email"
    assert decision.identity == f"slack:{TEAM_ID}/{RITA}"

    verified = World(fake, email_fallback=True, assurance=Assurance.VERIFIED)
    assert verified.click(RITA) == 200
    assert verified.click(SAM) == 200
    record = verified.record()
    assert [d.principal for d in record.decisions] == ["sam"]
    assert [r.reason for r in record.refusals] == [RefusalReason.ASSURANCE_TOO_LOW]
    assert "not counted" in verified.told(RITA)[-1]

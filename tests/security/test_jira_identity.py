"""Findings 4 and 5 (Jira): a decision comes from the run's own ticket, made while the request is open,
by the pinned account — and a signed webhook cannot be replayed later.

The attacks:

- *another ticket*: the run's label (``clearance-run-<run id>``) is just a label; anyone who can
  edit a ticket can put it on another one, where an approver moved the ticket to "Approved" for
  another reason. Both the webhook and the poller took that as the approver's decision on the run.
- *an old transition*: the poller read every history entry of the ticket, including moves made
  before the request opened (e.g. while the gates were still running).
- *a replayed webhook*: a captured signed delivery stayed valid for ever.
- *an e-mail*: an account whose e-mail equals an approver's was taken for that approver.

Each test drives the real webhook route (Starlette TestClient) or the real poller against the local
Jira (``tests/fakes/jira_server.py``, the real ``jira`` library over HTTP) with an in-memory store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clearance.approvals import ApprovalRequest, RefusalReason
from clearance.config.schema import Assurance, Channel, Principals
from clearance.core.clock import utcnow
from clearance.core.keys import approvals_key, jira_state_key, run_index_key
from clearance.events import PromotionEvent
from clearance.settings.jira import JiraSettings
from tasks.jira_notifier import JiraNotifier
from tasks.jira_tracking import BASE_LABEL, run_label
from tests.fakes.jira_server import FakeJira
from tests.fakes.memory_store import MemoryStore

SECRET = "whsec-security"
RUN = "run-sec-1"
DIGEST = "ab" * 32

PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "dana", "email": "dana@example.com", "jira_account_id": "acc-dana", "roles": []},
    {"id": "sam", "email": "sam@example.com", "jira_account_id": "acc-sam", "roles": ["security"]},
    {"id": "bea", "email": "bea@example.com", "jira_account_id": "acc-bea", "roles": ["business"]},
    {"id": "rita", "email": "rita@example.com", "roles": ["business"]},  # no pinned account
]})


@pytest.fixture
def fake() -> Iterator[FakeJira]:
    jira = FakeJira("Cloud").start()
    for name in ("dana", "sam", "bea", "rita"):
        jira.add_user(name, f"{name}-pw", account_id=f"acc-{name}", email=f"{name}@example.com")
    jira.add_user("mallory", "mallory-pw", account_id="acc-mallory", email="bea@example.com")  # bea's e-mail
    yield jira
    jira.stop()
    assert jira.contract_errors == []


@pytest.fixture(autouse=True)
def quiet_intake(monkeypatch):
    monkeypatch.setattr("tasks.approval_intake.wake_run", lambda run_id: True)
    monkeypatch.setattr("tasks.approval_intake.publish_event", lambda event: [])
    monkeypatch.setattr("tasks.jira_approvals._bot_identities", lambda *a: frozenset({"acc-bot"}))


def settings_for(fake: FakeJira, **overrides) -> JiraSettings:
    values = {"url": fake.url, "email": "bot@example.com", "api_token": "bot-password", "project": "CLR",
              "max_retries": 0, "backoff_seconds": 0.01, "timeout_seconds": 2, "webhook_secret": SECRET}
    return JiraSettings(**(values | overrides))


def event(kind: str, **details) -> PromotionEvent:
    return PromotionEvent(kind=kind, run_id=RUN, model="churn", version="1.0.0", tier="high", initiator="dana",
                          artifact_digest=DIGEST, links={}, **details)


class Run:
    """A run whose ticket exists (gates running); :meth:`open_request` asks for sign-off."""

    def __init__(self, fake: FakeJira, **settings) -> None:
        self.fake = fake
        self.store = MemoryStore()
        self.settings = settings_for(fake, **settings)
        self.notifier = JiraNotifier(self.settings, self.store)
        self.notifier.handle(event("opened"))
        self.key = fake.issues_with_label(run_label(RUN))[0]["key"]
        self.record_key = approvals_key("churn", "1.0.0", RUN)

    def open_request(self, assurance: Assurance = Assurance.CLAIMED) -> None:
        from tasks.approvals_record import open_record

        time.sleep(0.005)  # Jira times are in ms: the request opens strictly after what happened so far
        request = ApprovalRequest(run_id=RUN, model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                                  evidence_digest="cd" * 32, required_roles={"security": 1, "business": 1},
                                  excluded_principals=["dana"], initiator="dana", channels=[Channel.JIRA],
                                  deadline=utcnow() + timedelta(hours=1), assurance=assurance,
                                  initiator_assurance=Assurance.VERIFIED)
        record = open_record(self.store, request)
        self.store.put_if_absent(run_index_key(RUN), json.dumps({"record": self.record_key}).encode())
        self.notifier.handle(event("approval-requested", record=record))
        assert self.fake.status_of(self.key) == "Awaiting approval"

    def webhook(self, clock=time.time, **settings) -> TestClient:
        """``clearance serve``'s webhook route on this run's store (``settings`` override the run's)."""
        from clearance.app.serve.jira_routes import routes

        served = settings_for(self.fake, **settings) if settings else self.settings
        return TestClient(Starlette(routes=routes(served, self.store, PRINCIPALS, clock)))

    def record(self):
        from tasks.approvals_record import read_record

        return read_record(self.store, self.record_key)[0]


def deliver(client: TestClient, payload: dict) -> tuple[int, dict]:
    from clearance.app.serve.jira_routes import signature_for

    body = json.dumps(payload).encode()
    answer = client.post("/jira/webhook", content=body, headers={"Content-Type": "application/json",
                                                                 "X-Hub-Signature": signature_for(SECRET, body)})
    return answer.status_code, answer.json()


def decoy_ticket(run: Run) -> str:
    """Another ticket of the project, labelled with the run's label by someone who can edit tickets."""
    from tasks.jira_client import connect

    created = connect(run.settings).create_issue(fields={
        "project": {"key": "CLR"}, "issuetype": {"name": "Task"}, "summary": "Quarterly access review",
        "description": "unrelated", "labels": [BASE_LABEL, run_label(RUN)]}, prefetch=False)
    return created.key


def poll(run: Run, **settings) -> list[str]:
    from clearance.app.jira_poller import poll_once

    return poll_once(settings_for(run.fake, **settings) if settings else run.settings, run.store, PRINCIPALS)


# --------------------------------------------------------------------------- another ticket (finding 4)


def test_a_transition_on_another_ticket_with_the_run_label_counts_for_nothing(fake):
    run = Run(fake)
    run.open_request()
    decoy = decoy_ticket(run)
    comments_before = len(fake.issues[run.key]["comments"])
    fake.transition_as("sam", decoy, "Approve")  # sam approves the access review, not the model
    decoy_history = fake.issues[decoy]["histories"][-1]["id"]

    status, answer = deliver(run.webhook(), fake.webhooks[-1])
    assert status == 200 and answer["results"] == [f"refused: {decoy} is not the ticket of run {RUN} ({run.key})"]
    notes = poll(run)
    assert notes == [f"{decoy}#{decoy_history}: refused: {decoy} is not the ticket of run {RUN} ({run.key})"]

    record = run.record()
    assert record.decisions == [] and record.refusals == []  # nothing recorded for a ticket that is not the run's
    # ... and nothing written on the run's ticket either (else labelling a ticket would be a way to write there).
    assert len(fake.issues[run.key]["comments"]) == comments_before
    assert fake.status_of(run.key) == "Awaiting approval"

    # The run's own ticket still works.
    fake.transition_as("sam", run.key, "Approve")
    assert deliver(run.webhook(), fake.webhooks[-1])[1]["results"] == ["counted: sam approve"]


def test_a_run_whose_ticket_is_not_known_yet_takes_no_transition(fake):
    run = Run(fake)
    run.open_request()
    state_key = jira_state_key("churn", "1.0.0", RUN)
    state = run.store.get_json(state_key)
    run.store.objects[state_key] = json.dumps({k: v for k, v in state.items()  # as if the ticket were
                                               if k not in ("issue_key", "issue_id")}).encode()  # not created yet
    fake.transition_as("sam", run.key, "Approve")
    status, answer = deliver(run.webhook(), fake.webhooks[-1])
    assert status == 200 and answer["results"] == [f"refused: run {RUN} has no tracked ticket yet"]
    assert run.record().decisions == []


# --------------------------------------------------------------------------- old transitions and replays


def test_a_transition_made_before_the_request_opened_is_never_counted(fake):
    run = Run(fake)
    fake.transition_as("sam", run.key, "Approve")  # while the gates are still running
    early_webhook, early_history = fake.webhooks[-1], fake.issues[run.key]["histories"][-1]["id"]
    run.open_request()
    fake.transition_as("bea", run.key, "Approve")
    bea_history = fake.issues[run.key]["histories"][-1]["id"]

    notes = poll(run)
    assert f"{run.key}#{early_history}: refused: made at" in notes[0] and "before the request opened" in notes[0]
    assert notes[1] == f"{run.key}#{bea_history}: counted: bea approve"
    # The early move delivered by webhook (signed, within the replay window) is refused the same way.
    status, answer = deliver(run.webhook(), early_webhook)
    assert status == 200 and "before the request opened" in answer["results"][0]
    assert [d.principal for d in run.record().decisions] == ["bea"]


@pytest.mark.parametrize("shift", [-301, 301])
def test_a_signed_webhook_outside_the_replay_window_is_refused(fake, shift):
    run = Run(fake)
    run.open_request()
    fake.transition_as("sam", run.key, "Approve")
    captured = fake.webhooks[-1]
    # The same signed body, received 301 s after it was sent (a replay) or dated 301 s ahead.
    status, answer = deliver(run.webhook(clock=lambda: time.time() - shift), captured)
    assert status == 401 and "replay window" in answer["error"]
    assert run.record().decisions == [] and run.record().refusals == []
    # Inside the window it counts; the window is a setting.
    assert deliver(run.webhook(clock=lambda: time.time() - shift * 0.9), captured)[1]["results"] == [
        "counted: sam approve"]


def test_the_replay_window_is_a_setting_and_the_timestamp_is_required(fake):
    run = Run(fake, replay_window_seconds=10)
    run.open_request()
    fake.transition_as("sam", run.key, "Approve")
    captured = fake.webhooks[-1]
    assert deliver(run.webhook(clock=lambda: time.time() + 11), captured)[0] == 401
    untimed = {k: v for k, v in captured.items() if k != "timestamp"}
    status, answer = deliver(run.webhook(), untimed)
    assert status == 400 and "timestamp" in answer["error"]
    assert run.record().decisions == []


# --------------------------------------------------------------------------- who moved it (finding 5)


def test_only_the_pinned_account_is_verified(fake):
    run = Run(fake)
    run.open_request(Assurance.VERIFIED)
    fake.transition_as("sam", run.key, "Approve")
    assert deliver(run.webhook(), fake.webhooks[-1])[1]["results"] == ["counted: sam approve"]
    (decision,) = run.record().decisions
    assert decision.assurance is Assurance.VERIFIED and decision.channel_evidence["matched_by"] == "account"
    assert decision.identity == f"jira:{fake.url.removeprefix('http://')}/acc-sam"
    assert decision.proof is not None and decision.proof.kind == "service"


@pytest.mark.parametrize("email_fallback", [False, True])
def test_an_account_with_an_approvers_email_is_not_that_approver(fake, email_fallback):
    run = Run(fake, email_fallback=email_fallback)
    run.open_request()
    fake.transition_as("mallory", run.key, "Approve")  # bea's e-mail; bea's pinned account is acc-bea
    status, answer = deliver(run.webhook(), fake.webhooks[-1])
    assert status == 200 and answer["results"] == ["refused: unknown_principal"]
    record = run.record()
    assert record.decisions == []
    assert [(r.reason, r.identity) for r in record.refusals] == [
        (RefusalReason.UNKNOWN_PRINCIPAL, f"jira:{fake.url.removeprefix('http://')}/acc-mallory")]
    assert fake.status_of(run.key) == "Awaiting approval"  # moved back, with a comment saying why


def test_email_fallback_is_opt_in_and_claimed(fake):
    run = Run(fake)
    run.open_request()
    fake.transition_as("rita", run.key, "Approve")  # rita has no pinned account: only her e-mail names her
    assert deliver(run.webhook(), fake.webhooks[-1])[1]["results"] == ["refused: unknown_principal"]

    fake.transition_as("rita", run.key, "Approve")  # the same run, served by a clearance with the fallback on
    assert deliver(run.webhook(email_fallback=True), fake.webhooks[-1])[1]["results"] == ["counted: rita approve"]
    (decision,) = run.record().decisions
    assert (decision.principal, decision.assurance) == ("rita", Assurance.CLAIMED)
    assert decision.channel_evidence["matched_by"] == "email"


def test_a_verified_tier_refuses_an_email_match(fake):
    run = Run(fake, email_fallback=True)
    run.open_request(Assurance.VERIFIED)
    fake.transition_as("rita", run.key, "Approve")
    assert deliver(run.webhook(), fake.webhooks[-1])[1]["results"] == ["refused: assurance_too_low"]
    assert run.record().decisions == []


def test_on_server_the_stable_user_key_is_pinned_not_the_renameable_name(fake):
    fake.deployment = "Server"
    # Someone renamed their Server account to the string pinned for sam; their key is their own.
    fake.add_user("acc-sam", "imp-pw", account_id="acc-imposter", email="imposter@example.com",
                  key="JIRAUSER10999")
    run = Run(fake, email=None, api_token=None, username="clearance-bot", password="bot-password")
    run.open_request()
    fake.transition_as("acc-sam", run.key, "Approve")
    imposter_history = fake.issues[run.key]["histories"][-1]["id"]
    assert poll(run) == [f"{run.key}#{imposter_history}: refused: unknown_principal"]
    fake.transition_as("sam", run.key, "Approve")  # sam's key is acc-sam: pinned, verified
    sam_history = fake.issues[run.key]["histories"][-1]["id"]
    assert f"{run.key}#{sam_history}: counted: sam approve" in poll(run)
    (decision,) = run.record().decisions
    assert decision.assurance is Assurance.VERIFIED

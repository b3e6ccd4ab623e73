"""People who do not answer, on the real servers: reminders and escalation by the sweep with time injected,
and an older pending promotion closed as superseded when a newer version of the model is approved.

Two `clearance promote --direct` runs (1.0.0 and 1.1.0 of one model) wait for sign-off at once, with Slack and
Jira on (tests/fakes/slack_server.py, tests/fakes/jira_server.py). The sweep's reminder pass is called with
``now`` set past the policy's delays (never slept). Then 1.1.0 is approved: it promotes, and 1.0.0's request,
run, ledger, Slack thread and Jira ticket all end as superseded.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml

from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack
from tests.integration.promotion_kit import (
    POLICY_HIGH,
    PRINCIPALS,
    decide,
    find_run,
    finish,
    make_candidate,
    slack_for_principals,
    start_direct_run,
    wait_for_request,
)

pytestmark = pytest.mark.integration

CHANNEL = "C0REMINDER1"
SLACK_IDS = {p["id"]: p["slack_id"] for p in PRINCIPALS}
POLICY: dict[str, Any] = copy.deepcopy(POLICY_HIGH)
POLICY["approvals"] |= {"timeout": "4h", "reminders": {"after": "30m", "every": "1h", "escalate_after": "3h",
                                                       "escalate_to": ["carl"]}}


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = slack_for_principals(CHANNEL)
    yield fake
    fake.stop()


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    fake = FakeJira("Cloud").start()
    for person in PRINCIPALS:
        name = str(person["id"])
        fake.add_user(name, f"{name}-pw", account_id=f"acc-{name}", email=f"{name}@example.com")
    for name, value in {"URL": fake.url, "EMAIL": "bot@example.com", "API_TOKEN": "bot-password", "PROJECT": "CLR",
                        "MAX_RETRIES": "1", "BACKOFF_SECONDS": "0.05", "TIMEOUT_SECONDS": "3"}.items():
        monkeypatch.setenv(f"CLEARANCE_JIRA_{name}", value)
    yield fake
    fake.stop()
    assert fake.contract_errors == []


def ticket_of(fake: FakeJira, run_id: str, wanted: Callable[[dict[str, Any]], bool], timeout: float = 30
              ) -> dict[str, Any]:
    """The run's one ticket, once ``wanted`` holds for it (the channels catch up in the background)."""
    from tasks.jira_tracking import run_label

    deadline = time.monotonic() + timeout
    while True:
        with fake.lock:
            found = fake.issues_with_label(run_label(run_id))
            assert len(found) <= 1, "duplicate tickets"
            if found and wanted(found[0]):
                return found[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"ticket of {run_id}: {json.dumps(found)[:3000]}")
        time.sleep(0.2)


def comments(ticket: dict[str, Any]) -> str:
    return "\n".join(c["body"] for c in ticket["comments"])


def everything_posted(fake: FakeSlack) -> str:
    return json.dumps(list(fake.messages.values()))


def test_reminders_escalation_then_superseded(s3, tmp_path, fake_slack, jira, monkeypatch) -> None:
    from clearance.approvals import Outcome
    from clearance.settings import get_settings
    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record
    from tasks.ledger import read_ledger
    from tasks.promotion import read_pointer
    from tasks.reminders import send_due_reminders

    cand = make_candidate(tmp_path, s3, versions=("1.0.0", "1.1.0"), policy=POLICY)
    people = [p | {"jira_account_id": f"acc-{p['id']}"} for p in PRINCIPALS]
    (cand.config_dir / "principals.yaml").write_text(yaml.safe_dump({"principals": people}))
    for name, value in fake_slack.env(CHANNEL).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    get_settings.cache_clear()
    old_proc = start_direct_run(cand, "1.0.0", log=tmp_path / "old.log")
    new_proc = start_direct_run(cand, "1.1.0", log=tmp_path / "new.log")
    old, new = find_run(cand.model, "1.0.0"), find_run(cand.model, "1.1.0")
    wait_for_request(s3, old)
    wait_for_request(s3, new)
    old_key = record_key_for_run(s3, old)
    opened = read_record(s3, old_key)[0].request.opened_at

    # (a) The first reminder is due 30 minutes after the request opened: recorded, in the ledger, in Slack.
    first_due = opened + timedelta(minutes=30, seconds=1)
    before = set(fake_slack.messages)
    sent = [s for s in send_due_reminders(s3, now=first_due) if s.run_id == old]
    assert [(s.kind, s.number, s.to) for s in sent] == [("reminder", 1, ["bea", "sam", "sol"])]
    assert [s for s in send_due_reminders(s3, now=first_due) if s.run_id == old] == []  # never twice
    record = read_record(s3, old_key)[0]
    assert [(r.kind, r.number, r.missing) for r in record.reminders] == [("reminder", 1,
                                                                          {"security": 1, "business": 1})]
    reminded = [e for e in read_ledger(s3, cand.model) if e.kind == "reminded" and e.payload["about_run"] == old]
    assert len(reminded) == 1 and reminded[0].payload["to"] == ["bea", "sam", "sol"]
    assert "run" not in reminded[0].payload
    # One reply in 1.0.0's thread (1.1.0, opened a moment later, may be due its own by then).
    [reply] = [m for k, m in fake_slack.messages.items() if k not in before and f"{cand.model} 1.0.0" in m["text"]]
    assert reply.get("thread_ts") and all(f"<@{SLACK_IDS[p]}>" in json.dumps(reply) for p in ("bea", "sam", "sol"))
    assert f"<@{SLACK_IDS['dana']}>" not in json.dumps(reply)
    ticket_of(jira, old, lambda t: all(f"[~accountid:acc-{p}]" in comments(t) for p in ("bea", "sam", "sol")))

    # Three hours in: the reminder due then, and the escalation to the backup group (carl), each once.
    sent = [s for s in send_due_reminders(s3, now=opened + timedelta(hours=3, seconds=1)) if s.run_id == old]
    assert [(s.kind, s.number, s.to) for s in sent] == [("reminder", 3, ["bea", "sam", "sol"]),
                                                        ("escalation", 1, ["carl"])]
    escalated = [e for e in read_ledger(s3, cand.model) if e.kind == "escalated" and e.payload["about_run"] == old]
    assert len(escalated) == 1 and escalated[0].payload["waiting_on"] == ["bea", "sam", "sol"]
    assert f"<@{SLACK_IDS['carl']}>" in everything_posted(fake_slack)
    ticket_of(jira, old, lambda t: "[~accountid:acc-carl]" in comments(t))

    # (b) 1.1.0 is approved: it promotes, and 1.0.0's pending request is superseded everywhere.
    assert decide(s3, cand, new, "sam").accepted
    assert decide(s3, cand, new, "bea").accepted
    assert finish(new_proc) == 0, (tmp_path / "new.log").read_text()[-3000:]
    live = read_pointer(s3, "production", cand.model).pointer
    assert live is not None and live.version == "1.1.0"
    assert finish(old_proc) != 0, (tmp_path / "old.log").read_text()[-3000:]

    superseded = read_record(s3, old_key)[0]
    assert superseded.outcome is Outcome.SUPERSEDED
    assert superseded.closed_by == [f"superseded by 1.1.0 (run {new})"]
    assert len(superseded.reminders) == 3  # the reminders sent stay on the record
    late = decide(s3, cand, old, "bea")
    assert late.refusal is not None and late.refusal.reason.value == "request_closed"

    state = _final_state(old)
    assert state.type.value == "FAILED" and "superseded" in (state.message or "")
    own = [e for e in read_ledger(s3, cand.model) if e.payload.get("run") == old]
    assert own[-1].kind == "superseded" and "1.1.0" in own[-1].payload["reason"]
    assert "superseded by 1.1.0" in everything_posted(fake_slack)
    ticket = ticket_of(jira, old, lambda t: "Superseded" in comments(t))
    assert ticket["fields"]["status"]["name"] == "Rejected"


def _final_state(run_id: str, timeout: float = 30):
    from uuid import UUID

    from prefect import get_client

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        if state is not None and state.is_final() or time.monotonic() > deadline:
            return state
        time.sleep(0.3)

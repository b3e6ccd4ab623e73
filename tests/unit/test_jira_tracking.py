"""The Jira channel against the fake Jira (real `jira` library over HTTP) and an in-memory store.

Covers tracking (one ticket per run, statuses, comments, attachment, link), clear errors for a
missing transition, outages (retry, queue, catch-up), Cloud vs Server search, and approval by
transition through the webhook and the poller (the shared intake; waking Prefect is stubbed).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from clearance.approvals import ApprovalRequest
from clearance.config.schema import Channel, Principals
from clearance.core.clock import utcnow
from clearance.core.keys import approvals_key, jira_state_key
from clearance.core.keys import jira_pending_key as pending_key
from clearance.events import PromotionEvent
from clearance.settings.jira import JiraSettings
from gates.base import CheckResult, GateResult, Status
from tasks.jira_client import JiraConfigError, JiraUnavailable
from tasks.jira_notifier import JiraNotifier, flush_pending
from tasks.jira_tracking import run_label
from tests.fakes.jira_server import FakeJira
from tests.fakes.memory_store import MemoryStore

SECRET = "whsec-test"
TOKEN = "bot-password"
PRINCIPALS = Principals.model_validate({"principals": [
    {"id": "dana", "email": "dana@example.com", "jira_account_id": "acc-dana", "roles": []},
    {"id": "sam", "email": "sam@example.com", "jira_account_id": "acc-sam", "roles": ["security"]},
    {"id": "bea", "email": "bea@example.com", "jira_account_id": "acc-bea", "roles": ["business"]},
    {"id": "carl", "email": "carl@example.com", "jira_account_id": "acc-carl", "roles": ["compliance"]},
]})


@pytest.fixture
def fake():
    jira = FakeJira("Cloud").start()
    for name in ("dana", "sam", "bea", "carl"):
        jira.add_user(name, f"{name}-pw", account_id=f"acc-{name}", email=f"{name}@example.com")
    yield jira
    jira.stop()
    assert jira.contract_errors == []


def settings_for(fake: FakeJira, **overrides) -> JiraSettings:
    values = {"url": fake.url, "email": "bot@example.com", "api_token": TOKEN, "project": "CLR", "max_retries": 2,
              "backoff_seconds": 0.01, "timeout_seconds": 2, "webhook_secret": SECRET}
    return JiraSettings(**(values | overrides))


def event(kind: str, run_id: str = "run-1", **details) -> PromotionEvent:
    return PromotionEvent(kind=kind, run_id=run_id, model="churn", version="1.0.0", tier="high", initiator="dana",
                          artifact_digest="ab" * 32, links={"prefect_run": f"http://prefect/runs/flow-run/{run_id}"},
                          **details)


GATE = GateResult.from_checks("artifact_integrity", "1.0", [
    CheckResult(id="sha256_matches", status=Status.PASS, observed="ab" * 8, threshold="ab" * 8, message="ok"),
    CheckResult(id="size", status=Status.WARN, observed=1024, threshold={"max": 512}, message="big | heavy")])


def only_ticket(fake: FakeJira, run_id: str = "run-1") -> dict:
    tickets = fake.issues_with_label(run_label(run_id))
    assert len(tickets) == 1, [t["key"] for t in tickets]
    return tickets[0]


# --------------------------------------------------------------------------- tracking


def test_a_promotion_is_one_ticket_whose_status_comments_and_report_follow_it(fake):
    store = MemoryStore()
    notifier = JiraNotifier(settings_for(fake), store)
    notifier.handle(event("opened"))
    notifier.handle(event("gate", gate=GATE))
    store.objects["evidence/churn/1.0.0/run-1/report.md"] = b"# churn 1.0.0 promoted"
    notifier.handle(event("promoted", status="promoted", message="production/churn/1.0.0/model.joblib"))

    ticket = only_ticket(fake)
    fields = ticket["fields"]
    assert fields["summary"] == "Promote churn 1.0.0 (high tier)"
    assert {"clearance", "clearance-run-run-1"} <= set(fields["labels"])
    assert "ab" * 32 in fields["description"] and "dana" in fields["description"]
    assert fake.status_history(ticket["key"]) == ["Gates running", "Promoted"]
    gate = next(c["body"] for c in ticket["comments"] if "Gate artifact_integrity" in c["body"])
    assert "||check||status||observed||threshold||message||" in gate
    assert '|size|warn|1024|\\{"max": 512\\}|big \\| heavy|' in gate
    assert [a["json"]["filename"] for a in ticket["attachments"]] == ["clearance-report.md"]
    assert ticket["attachments"][0]["data"] == b"# churn 1.0.0 promoted"
    assert [link["object"]["url"] for link in ticket["remotelinks"]] == ["http://prefect/runs/flow-run/run-1"]


def test_the_configs_route_a_ticket_to_their_project_and_issue_type(fake):
    from clearance.config.schema import Notify

    fake.add_project("OPS")
    fake.issue_types.append({"id": "10002", "name": "Story", "subtask": False})
    routed = Notify(jira_project="OPS", jira_issue_type="Story")
    # The setting names CLR; the model's configs name OPS, and the flow's events carry that.
    notifier = JiraNotifier(settings_for(fake), MemoryStore())
    notifier.handle(event("opened", notify=routed))
    notifier.handle(event("gate", gate=GATE))  # a later event without routing goes to the same ticket
    ticket = only_ticket(fake)
    assert ticket["key"].startswith("OPS-") and ticket["fields"]["issuetype"]["name"] == "Story"
    assert any("Gate artifact_integrity" in c["body"] for c in ticket["comments"])
    # Without CLEARANCE_JIRA_PROJECT the configs alone are enough ...
    JiraNotifier(settings_for(fake, project=None), MemoryStore()).handle(event("opened", run_id="run-2",
                                                                                notify=routed))
    assert only_ticket(fake, "run-2")["key"].startswith("OPS-")
    # ... and with neither, one clear error says where to set it; nothing is created.
    with pytest.raises(JiraConfigError, match="notify.jira_project"):
        JiraNotifier(settings_for(fake, project=None), MemoryStore()).handle(event("opened", run_id="run-3"))
    assert fake.issues_with_label(run_label("run-3")) == []


def test_the_poller_searches_every_project_the_configs_name(tmp_path):
    from types import SimpleNamespace

    from clearance.app.jira_poller import decision_jql, ticket_projects
    from clearance.config.schema import Notify

    settings = JiraSettings(url="https://jira.example", project="CLR", email="bot@example.com", api_token="x")
    config = SimpleNamespace(policies={"high": SimpleNamespace(notify=Notify(jira_project="OPS")),
                                       "low": SimpleNamespace(notify=Notify())},
                             manifests={"churn": SimpleNamespace(notify=Notify(jira_project="RISK")),
                                        "other": SimpleNamespace(notify=Notify(jira_project="OPS"))})
    projects = ticket_projects(settings, config)
    assert projects == ["CLR", "OPS", "RISK"]
    assert decision_jql(settings, projects).startswith('project in ("CLR", "OPS", "RISK") AND labels = "clearance"')


def test_a_rerun_finds_its_ticket_again_and_writes_nothing_twice(fake):
    store = MemoryStore()
    JiraNotifier(settings_for(fake), store).handle(event("opened"))
    JiraNotifier(settings_for(fake), store).handle(event("gate", gate=GATE))
    # A retry that lost its local state (e.g. a new evidence prefix) finds the ticket by its run label.
    store.delete(jira_state_key("churn", "1.0.0", "run-1"))
    again = JiraNotifier(settings_for(fake), store)
    again.handle(event("opened"))
    again.handle(event("gate", gate=GATE))
    ticket = only_ticket(fake)
    assert len(fake.issues) == 1
    assert len(ticket["comments"]) == 1 and len(ticket["remotelinks"]) == 1
    assert fake.status_history(ticket["key"]) == ["Gates running"]


def test_missing_transition_is_one_clear_error_and_the_rest_is_written(fake):
    fake.workflow.pop("Run gates")
    store = MemoryStore()
    with pytest.raises(JiraConfigError) as error:
        JiraNotifier(settings_for(fake), store).handle(event("opened"))
    message = str(error.value)
    assert "'Run gates'" in message and "gates_running" in message and "CLEARANCE_JIRA_TRANSITIONS" in message
    assert "'Request approval'" in message and "'Promote'" in message  # names the ones that exist
    ticket = only_ticket(fake)
    assert ticket["remotelinks"] and fake.status_of(ticket["key"]) == "Open"
    # The promotion goes on: later events still update the ticket, the broken one is not retried forever.
    JiraNotifier(settings_for(fake), store).handle(event("gate", gate=GATE))
    assert len(ticket["comments"]) == 1
    state = store.get_json(jira_state_key("churn", "1.0.0", "run-1"))
    assert state["queue"] == [] and state["errors"][0]["op"] == "state/gates_running"


def test_outage_queues_and_the_next_successful_call_catches_up(fake, caplog):
    store = MemoryStore()
    fake.down = True
    caplog.set_level(logging.DEBUG)
    with pytest.raises(JiraUnavailable, match="queued"):
        JiraNotifier(settings_for(fake), store).handle(event("opened"))
    with pytest.raises(JiraUnavailable):
        JiraNotifier(settings_for(fake), store).handle(event("gate", gate=GATE))
    assert fake.issues == {}
    state = store.get_json(jira_state_key("churn", "1.0.0", "run-1"))
    assert [op["id"] for op in state["queue"]] == ["issue", "link/prefect_run", "state/gates_running",
                                                   "gate/artifact_integrity"]
    assert store.head(pending_key("run-1")) is not None
    assert TOKEN not in caplog.text and "Authorization" not in caplog.text
    fake.down = False
    # Nothing else happens to the run: the poller's flush writes the queue.
    assert flush_pending(settings_for(fake), store) == [jira_state_key("churn", "1.0.0", "run-1")]
    ticket = only_ticket(fake)
    assert fake.status_of(ticket["key"]) == "Gates running" and len(ticket["comments"]) == 1
    assert store.head(pending_key("run-1")) is None


def test_transient_errors_and_rate_limits_are_retried(fake):
    store = MemoryStore()
    fake.fail_next = [500, 429, 502]
    JiraNotifier(settings_for(fake, max_retries=3), store).handle(event("opened"))
    assert fake.status_of(only_ticket(fake)["key"]) == "Gates running"


def test_server_uses_search_and_cloud_uses_search_jql(fake):
    JiraNotifier(settings_for(fake), MemoryStore()).handle(event("opened", run_id="cloud-run"))
    assert ("GET", "/rest/api/2/search/jql") in fake.requests and ("GET", "/rest/api/2/search") not in fake.requests
    fake.deployment = "Server"
    fake.requests.clear()
    JiraNotifier(settings_for(fake, email=None, api_token=None, pat="bot-pat"), MemoryStore()).handle(
        event("opened", run_id="server-run"))
    assert ("GET", "/rest/api/2/search") in fake.requests and ("GET", "/rest/api/2/search/jql") not in fake.requests


# --------------------------------------------------------------------------- approval by transition


@pytest.fixture
def pending_run(fake, monkeypatch):
    """A run waiting for sign-off (record + run index in the memory store) with its ticket awaiting approval."""
    from clearance.core.keys import run_index_key
    from tasks.approvals_record import open_record

    store = MemoryStore()
    woken: list[str] = []
    monkeypatch.setattr("tasks.approval_intake.wake_run", lambda run_id: woken.append(run_id) or True)
    monkeypatch.setattr("tasks.jira_approvals._bot_identities", lambda *a: frozenset({"acc-bot"}))
    request = ApprovalRequest(run_id="run-1", model="churn", version="1.0.0", tier="high", artifact_digest="ab" * 32,
                              evidence_digest="cd" * 32, required_roles={"security": 1, "business": 1},
                              excluded_principals=["dana"], initiator="dana", channels=[Channel.JIRA, Channel.CLI],
                              deadline=utcnow() + timedelta(hours=1))
    record = open_record(store, request)
    store.put_if_absent(run_index_key("run-1"),
                        json.dumps({"record": approvals_key("churn", "1.0.0", "run-1")}).encode())
    settings = settings_for(fake)
    notifier = JiraNotifier(settings, store)
    notifier.handle(event("opened"))
    notifier.handle(event("approval-requested", record=record))
    key = only_ticket(fake)["key"]
    assert fake.status_of(key) == "Awaiting approval"
    fake.webhooks.clear()
    return store, settings, key, woken


def app_for(settings, store):
    from starlette.applications import Starlette

    from clearance.app.serve.jira_routes import routes

    return TestClient(Starlette(routes=routes(settings, store, PRINCIPALS)))


def deliver(client: TestClient, payload: dict, secret: str = SECRET, signature: str | None = None):
    from clearance.app.serve.jira_routes import signature_for

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature != "none":
        headers["X-Hub-Signature"] = signature or signature_for(secret, body)
    return client.post("/jira/webhook", content=body, headers=headers)


def record_of(store):
    return json.loads(store.get_bytes("evidence/churn/1.0.0/run-1/approvals.json")[0])


def test_signed_webhook_counts_a_transition_once_and_forged_ones_count_nothing(fake, pending_run):
    store, settings, key, woken = pending_run
    client = app_for(settings, store)
    fake.transition_as("sam", key, "Approve")
    payload = fake.webhooks[-1]
    assert deliver(client, payload, secret="not-the-secret").status_code == 401
    assert deliver(client, payload, signature="none").status_code == 401
    assert deliver(client, payload, signature="sha256=" + "0" * 64).status_code == 401
    assert record_of(store)["decisions"] == [] and record_of(store)["refusals"] == []

    answer = deliver(client, payload)
    assert answer.status_code == 200 and answer.json()["results"] == ["counted: sam approve"]
    assert deliver(client, payload).json()["results"] == ["duplicate: already received"]
    record = record_of(store)
    assert [(d["principal"], d["channel"], d["vote"]) for d in record["decisions"]] == [("sam", "jira", "approve")]
    assert record["decisions"][0]["dedupe_key"] == f"jira:{fake.issues[key]['id']}:{payload['changelog']['id']}"
    # The tally comment follows (the intake's approvals-changed event reaches the notifier).
    from clearance.events import event_for
    from tasks.approvals_record import read_record

    JiraNotifier(settings, store).handle(event_for(read_record(store, "evidence/churn/1.0.0/run-1/approvals.json")[0],
                                                   "approvals-changed"))
    tally = next(c["body"] for c in fake.issues[key]["comments"] if "Sign-off" in c["body"])
    assert "|security|1|sam|0|" in tally and "|business|1|-|1|" in tally
    assert sum("Sign-off" in c["body"] for c in fake.issues[key]["comments"]) == 1  # updated in place

    # bea (business) completes the quorum through Jira: the run is woken.
    fake.transition_as("bea", key, "Request approval")
    fake.transition_as("bea", key, "Approve")
    assert deliver(client, fake.webhooks[-1]).json()["results"] == ["counted: bea approve"]
    assert record_of(store)["outcome"] == "approved" and woken == ["run-1"]


def test_a_refused_transition_gets_a_comment_and_the_ticket_goes_back(fake, pending_run):
    store, settings, key, woken = pending_run
    client = app_for(settings, store)
    fake.transition_as("carl", key, "Approve")  # compliance holds none of the required roles
    assert deliver(client, fake.webhooks[-1]).json()["results"] == ["refused: missing_role"]
    assert fake.status_of(key) == "Awaiting approval"
    note = fake.issues[key]["comments"][-1]["body"]
    assert "not counted" in note and "carl holds none of the required roles" in note
    fake.transition_as("dana", key, "Reject")  # the initiator may not decide
    assert deliver(client, fake.webhooks[-1]).json()["results"] == ["refused: self_approval"]
    assert fake.status_of(key) == "Awaiting approval"
    record = record_of(store)
    assert record["decisions"] == [] and {r["reason"] for r in record["refusals"]} == {"missing_role", "self_approval"}
    # The bot's own move back is not a decision.
    assert all("ignored" in r for r in deliver(client, fake.webhooks[-1]).json()["results"])
    assert woken == []


def test_polling_a_server_instance_counts_changes_once_even_after_the_webhook(fake, pending_run):
    from clearance.app.jira_poller import poll_once

    store, _settings, key, woken = pending_run
    fake.deployment = "Server"
    server = settings_for(fake, email=None, api_token=None, username="clearance-bot", password="bot-password")
    fake.transition_as("sam", key, "Approve")
    notes = poll_once(server, store, PRINCIPALS)
    assert notes == [f"{key}#{fake.issues[key]['histories'][-1]['id']}: counted: sam approve"]
    assert ("GET", "/rest/api/2/search") in fake.requests
    assert all("duplicate" in n for n in poll_once(server, store, PRINCIPALS))
    # The same change arriving by webhook too counts once.
    client = app_for(server, store)
    webhook = fake.webhooks[-1]
    assert deliver(client, webhook).json()["results"] == ["duplicate: already received"]
    assert [d["principal"] for d in record_of(store)["decisions"]] == ["sam"]
    assert woken == []  # one of two roles: the run is not woken yet


def test_polling_skips_tickets_not_updated_within_the_window(fake, pending_run):
    from clearance.app.jira_poller import decision_jql, poll_once

    store, _settings, key, _woken = pending_run
    fake.deployment = "Server"
    server = settings_for(fake, email=None, api_token=None, username="clearance-bot", password="bot-password")
    fake.transition_as("sam", key, "Approve")
    fake.issues[key]["fields"]["updated"] = "2020-01-01T00:00:00.000+0000"  # long before the -2d window
    assert 'updated >= "-2d"' in decision_jql(server)
    assert poll_once(server, store, PRINCIPALS) == []
    assert record_of(store)["decisions"] == []


# --------------------------------------------------------------------------- settings and the spec subset


def test_secrets_never_show_in_settings_repr():
    settings = JiraSettings(url="https://x.example", email="a@example.com", api_token="tok-123", project="P",
                            webhook_secret="whsec-9")
    assert settings.enabled and settings.auth_kind == "api-token"
    assert "tok-123" not in repr(settings) and "whsec-9" not in repr(settings)


def test_committed_spec_subset_is_what_the_script_makes():
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    source = repo.parent / "shared" / "specs"
    if not (source / "jira_cloud_platform_swagger-v3.v3.json").exists():
        pytest.skip("../shared/specs is not here (a fresh clone tests with the committed subset)")
    spec = importlib.util.spec_from_file_location("make_spec_subsets", repo / "scripts" / "make_spec_subsets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (repo / "tests" / "specs" / "jira" / "jira_platform_v3.subset.json").read_bytes()
    try:
        assert module.make_jira_subset(source).read_bytes() == committed
    finally:
        (repo / "tests" / "specs" / "jira" / "jira_platform_v3.subset.json").write_bytes(committed)


# --------------------------------------------------------------------------- races between processes


def _run_together(*jobs):
    """Start ``jobs`` in threads at the same moment; re-raise the first error."""
    import threading

    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job):
        start.wait()
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a flush hung"
    if errors:
        raise errors[0]


def test_two_processes_flushing_an_empty_state_at_once_create_one_ticket(fake):
    store = MemoryStore()
    # Both searches are answered together: unless one process keeps out of the way (the flush
    # lease), both see "no ticket" and both create.
    fake.hold("GET", r"/search", parties=2, timeout=0.5)
    first, second = JiraNotifier(settings_for(fake), store), JiraNotifier(settings_for(fake), store)
    _run_together(lambda: first.handle(event("opened")), lambda: second.handle(event("opened")))

    assert len(fake.issues) == 1, sorted(fake.issues)
    ticket = only_ticket(fake)
    state = store.get_json(jira_state_key("churn", "1.0.0", "run-1"))
    assert state["issue_key"] == ticket["key"] and "flusher" not in state  # the lease was given back
    assert state["queue"] == [] and store.head(pending_key("run-1")) is None
    # The lease holder also wrote what the other one queued, once.
    assert fake.status_history(ticket["key"]) == ["Gates running"]
    assert len(ticket["remotelinks"]) == 1


def test_what_a_process_queues_while_another_holds_the_lease_is_written_by_the_holder(fake):
    store = MemoryStore()
    fake.hold("GET", r"/search", parties=2, timeout=0.5)  # keeps the holder busy for a moment
    holder, other = JiraNotifier(settings_for(fake), store), JiraNotifier(settings_for(fake), store)
    _run_together(lambda: holder.handle(event("opened")), lambda: other.handle(event("gate", gate=GATE)))
    ticket = only_ticket(fake)
    assert sum("Gate artifact_integrity" in c["body"] for c in ticket["comments"]) == 1
    assert fake.status_history(ticket["key"]) == ["Gates running"] and len(ticket["remotelinks"]) == 1
    state = store.get_json(jira_state_key("churn", "1.0.0", "run-1"))
    assert state["queue"] == [] and "flusher" not in state and store.head(pending_key("run-1")) is None


@pytest.mark.parametrize("close_with", [None, "Close as duplicate", "Not in this workflow"])
def test_a_second_ticket_made_without_a_shared_state_is_marked_duplicate_and_the_oldest_kept(fake, close_with, caplog):
    from tasks.jira_tracking import DUPLICATE_LABEL

    fake.statuses["Closed"] = "99"
    fake.workflow["Close as duplicate"] = "Closed"
    settings = settings_for(fake, duplicate_transition=close_with)
    # Two processes whose run state is not shared (e.g. a retry that lost it): no lease can help,
    # so after creating each searches again and both settle on the oldest ticket.
    stores = [MemoryStore(), MemoryStore()]
    fake.hold("GET", r"/search", parties=2, timeout=10)  # both come: released at once; 10 s for a starved moment
    _run_together(*(lambda s=s: JiraNotifier(settings, s).handle(event("opened")) for s in stores))

    assert len(fake.issues) == 2  # both were created: that is the race
    kept = only_ticket(fake)  # only one still carries the run label
    oldest = min(fake.issues.values(), key=lambda i: int(i["id"]))
    assert kept["key"] == oldest["key"]
    duplicate = next(i for i in fake.issues.values() if i["key"] != kept["key"])
    assert DUPLICATE_LABEL in duplicate["fields"]["labels"]
    assert run_label("run-1") not in duplicate["fields"]["labels"]
    assert sum(f"duplicates {kept['key']}" in c["body"] for c in duplicate["comments"]) == 1
    closed = duplicate["fields"]["status"]["name"] == "Closed"
    assert closed == (close_with == "Close as duplicate")
    assert kept["fields"]["status"]["name"] != "Closed"
    if close_with == "Not in this workflow":  # one clear line naming the setting and what the workflow offers
        assert any("CLEARANCE_JIRA_DUPLICATE_TRANSITION" in r.getMessage() and "'Close as duplicate'" in r.getMessage()
                   for r in caplog.records)
    for store in stores:
        assert store.get_json(jira_state_key("churn", "1.0.0", "run-1"))["issue_key"] == kept["key"]
    # Later events of either process go to the kept ticket only.
    JiraNotifier(settings_for(fake), stores[1]).handle(event("gate", gate=GATE))
    assert any("Gate artifact_integrity" in c["body"] for c in kept["comments"])
    assert not any("Gate" in c["body"] for c in duplicate["comments"])


class _DeleteRacingStore(MemoryStore):
    """Runs ``before_delete(key)`` once, right before the first delete of a key under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.before_delete = None

    def delete(self, key: str) -> None:
        hook, self.before_delete = (self.before_delete, None) if key.startswith(self.prefix) else (None,
                                                                                                 self.before_delete)
        if hook is not None:
            hook(key)
        super().delete(key)


def test_leaving_the_pending_list_does_not_drop_an_operation_queued_meanwhile(fake):
    store = _DeleteRacingStore("evidence/jira/pending/")
    JiraNotifier(settings_for(fake), store).handle(event("opened"))
    ticket_key = only_ticket(fake)["key"]
    assert store.head(pending_key("run-1")) is None

    def other_process_queues_while_jira_is_down(_key):
        # Between this flush seeing an empty queue and its removal of the pending entry,
        # another process queues a gate comment, cannot write it (Jira down) and lists the run.
        fake.down = True
        try:
            with pytest.raises(JiraUnavailable):
                JiraNotifier(settings_for(fake), store).handle(event("gate", gate=GATE))
        finally:
            fake.down = False
        assert store.head(pending_key("run-1")) is not None

    store.before_delete = other_process_queues_while_jira_is_down
    JiraNotifier(settings_for(fake), store).handle(event("opened"))  # a rerun: nothing new, queue empty
    assert store.before_delete is None, "the race was not exercised"

    # The run is still listed, so the poller's flush writes the gate comment.
    assert store.head(pending_key("run-1")) is not None
    assert [op["id"] for op in store.get_json(jira_state_key("churn", "1.0.0", "run-1"))["queue"]] == [
        "gate/artifact_integrity"]
    assert flush_pending(settings_for(fake), store) == [jira_state_key("churn", "1.0.0", "run-1")]
    assert any("Gate artifact_integrity" in c["body"] for c in fake.issues[ticket_key]["comments"])
    assert store.head(pending_key("run-1")) is None


# --------------------------------------------------------------------------- one tally, two channels


def _slack_tally(blocks: list[dict]) -> tuple[dict[str, list[str]], dict[str, int], list[str]]:
    """counted / missing per role and who rejected, read back from the Slack approval message."""
    import re

    section = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Approvals*"))
    counted, missing, rejected = {}, {}, []
    for line in section.splitlines()[1:]:
        if m := re.match(r"^:\w+: \*(?P<role>[^*]+)\*: (?P<n>\d+)/(?P<need>\d+) \((?P<who>[^)]*)\)"
                         r"(?: — needs (?P<more>\d+) more)?", line):
            who = [] if m["who"] == "nobody yet" else m["who"].split(", ")
            assert int(m["n"]) == len(who)
            counted[m["role"]] = who
            # "n/need" always shows; "needs k more" only while the request is open.
            missing[m["role"]] = max(0, int(m["need"]) - int(m["n"]))
            assert m["more"] is None or int(m["more"]) == missing[m["role"]], line
        elif m := re.match(r"^:x: rejected by \*(?P<who>[^*]+)\*", line):
            rejected.append(m["who"])
    return counted, missing, rejected


def _jira_tally(body: str) -> tuple[dict[str, list[str]], dict[str, int], list[str]]:
    """counted / missing per role and who rejected, read back from the Jira sign-off comment."""
    counted, missing, rejected = {}, {}, []
    for line in body.splitlines():
        cells = line.split("|")
        if line.startswith("|") and not line.startswith("||") and len(cells) == 6:
            _, role, _need, who, more, _ = cells
            counted[role] = [] if who == "-" else who.split(", ")
            missing[role] = int(more)
        elif line.startswith("Rejected by: "):
            rejected = line[len("Rejected by: "):].split(", ")
    return counted, missing, rejected


def test_slack_approval_message_and_jira_tally_comment_show_the_same_tally():
    from clearance.approvals import Vote, tally
    from clearance.render.jira_comments import tally_comment
    from clearance.render.slack_messages import approval_message
    from tasks.approvals_record import open_record, read_record, submit_decision

    store = MemoryStore()
    people = Principals.model_validate({"principals": [
        *(p.model_dump() for p in PRINCIPALS.principals),
        {"id": "sol", "email": "sol@example.com", "roles": ["security", "business"]},
        {"id": "ray", "email": "ray@example.com", "roles": ["security"]},
    ]})
    request = ApprovalRequest(run_id="run-1", model="churn", version="1.0.0", tier="high", artifact_digest="ab" * 32,
                              evidence_digest="cd" * 32, required_roles={"security": 2, "business": 1},
                              excluded_principals=["dana"], initiator="dana", channels=[Channel.JIRA, Channel.SLACK],
                              deadline=utcnow() + timedelta(hours=1))
    open_record(store, request)
    key = approvals_key("churn", "1.0.0", "run-1")
    now = utcnow()
    seen = []

    def both(record):
        _, blocks = approval_message(record, [], now=now)
        slack = _slack_tally(blocks)
        jira = _jira_tally(tally_comment(record, settings_for_tally(), now=now))
        truth = tally(record, now)
        assert slack == jira == (truth.counted, truth.missing, truth.rejected_by), (slack, jira, truth)
        seen.append(jira)

    both(read_record(store, key)[0])  # nobody yet
    # sol holds two roles but counts once (role assignment is the shared rule's, not each renderer's).
    for who, vote in (("sol", Vote.APPROVE), ("sam", Vote.APPROVE), ("ray", Vote.REJECT)):
        result = submit_decision(store, key, principal=people.by_id(who), identity=who, channel=Channel.SLACK,
                                 vote=vote, artifact_digest="ab" * 32)
        assert result.accepted, result
        both(read_record(store, key)[0])
    assert [s[1] for s in seen] == [{"business": 1, "security": 2}, {"business": 0, "security": 2},
                                    {"business": 0, "security": 1}, {"business": 0, "security": 1}]
    assert seen[-1][2] == ["ray"]


def settings_for_tally() -> JiraSettings:
    return JiraSettings(url="https://jira.example", project="CLR", email="bot@example.com", api_token="x")

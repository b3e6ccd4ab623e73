"""Jira on a real promotion: real Prefect server, real SeaweedFS, the run in a subprocess, the fake Jira.

The run's process finds the Jira channel through ``CLEARANCE_JIRA_*`` (pointing at the fake);
decisions arrive through the signed webhook of the real ASGI app (in this process) and the CLI
intake. One run per test carries several assertions to keep the suite short.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.fakes.jira_server import FakeJira
from tests.integration.promotion_kit import (
    PRINCIPALS,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration
SECRET = "whsec-integration"


@pytest.fixture
def s3(s3_service, prefect_service):
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    get_settings.cache_clear()
    return ObjectStore.from_settings(get_settings())


@pytest.fixture
def jira(monkeypatch):
    fake = FakeJira("Cloud").start()
    for name in ("dana", "sam", "bea", "carl"):
        fake.add_user(name, f"{name}-pw", account_id=f"acc-{name}", email=f"{name}@example.com")
    for name, value in {"URL": fake.url, "EMAIL": "bot@example.com", "API_TOKEN": "bot-password", "PROJECT": "CLR",
                        "MAX_RETRIES": "1", "BACKOFF_SECONDS": "0.05", "TIMEOUT_SECONDS": "3",
                        "WEBHOOK_SECRET": SECRET}.items():
        monkeypatch.setenv(f"CLEARANCE_JIRA_{name}", value)
    yield fake
    fake.stop()
    assert fake.contract_errors == []


def candidate_with_jira_ids(tmp_path, s3, monkeypatch):
    cand = make_candidate(tmp_path, s3)
    people = [p | {"jira_account_id": f"acc-{p['id']}"} for p in PRINCIPALS]
    (cand.config_dir / "principals.yaml").write_text(yaml.safe_dump({"principals": people}))
    from clearance.settings import get_settings

    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    get_settings.cache_clear()
    return cand


def ticket_of(fake: FakeJira, run_id: str, status: str | None = None, timeout: float = 30) -> dict:
    from tasks.jira_tracking import run_label

    deadline = time.monotonic() + timeout
    while True:
        with fake.lock:
            found = fake.issues_with_label(run_label(run_id))
            if len(found) == 1 and (status is None or found[0]["fields"]["status"]["name"] == status):
                return found[0]
            assert len(found) <= 1, "duplicate tickets"
        if time.monotonic() > deadline:
            raise TimeoutError(f"ticket of {run_id}: {[f['fields']['status']['name'] for f in found]}, want {status}")
        time.sleep(0.2)


def deliver(client, payload, secret=SECRET):
    from clearance.app.serve.jira_routes import signature_for

    body = json.dumps(payload).encode()
    return client.post("/jira/webhook", content=body,
                       headers={"Content-Type": "application/json", "X-Hub-Signature": signature_for(secret, body)})


def test_ticket_follows_a_promotion_approved_by_jira_transition_and_cli(s3, tmp_path, jira, monkeypatch):
    from starlette.testclient import TestClient

    from clearance.app.serve.app import build_app

    cand = candidate_with_jira_ids(tmp_path, s3, monkeypatch)
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    ticket = ticket_of(jira, run_id, "Awaiting approval")
    key = ticket["key"]
    assert jira.status_history(key) == ["Gates running", "Awaiting approval"]
    assert any("Gate artifact_integrity" in c["body"] and "||check||" in c["body"] for c in ticket["comments"])
    assert [link["object"]["url"].endswith(f"/runs/flow-run/{run_id}") for link in ticket["remotelinks"]] == [True]
    record_key = f"evidence/{cand.model}/1.0.0/{run_id}/approvals.json"
    digest = json.loads(s3.get_bytes(record_key)[0])["request"]["artifact_digest"]
    assert digest in ticket["fields"]["description"]

    client = TestClient(build_app())
    # A forged signature is refused before anything is read or counted.
    jira.transition_as("sam", key, "Approve")
    sam_moved = jira.webhooks[-1]
    assert deliver(client, sam_moved, secret="forged").status_code == 401
    assert json.loads(s3.get_bytes(record_key)[0])["decisions"] == []
    jira.transition_as("carl", key, "Approve")  # compliance: not a required role
    assert deliver(client, jira.webhooks[-1]).json()["results"] == ["refused: missing_role"]
    assert jira.status_of(key) == "Awaiting approval"
    assert "carl holds none of the required roles" in jira.issues[key]["comments"][-1]["body"]
    # sam's (earlier) signed change counts; the run keeps waiting for the business role.
    assert deliver(client, sam_moved).json()["results"] == ["counted: sam approve"]
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"
    # bea approves on the CLI path: a quorum mixing Jira and CLI resumes the run.
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]

    ticket = ticket_of(jira, run_id, "Promoted")
    assert jira.status_history(key)[-1] == "Promoted"
    assert [a["json"]["filename"] for a in ticket["attachments"]] == ["clearance-report.html"]
    tally = [c["body"] for c in ticket["comments"] if "Sign-off" in c["body"]]
    assert len(tally) == 1 and "approved" in tally[0] and "sam" in tally[0] and "bea" in tally[0]
    record = json.loads(s3.get_bytes(record_key)[0])
    assert {(d["principal"], d["channel"]) for d in record["decisions"]} == {("sam", "jira"), ("bea", "cli")}
    assert record["decisions"][0]["channel_evidence"]["issue"] == key
    # The pinned account on the run's own ticket: a verified decision, named by the Jira site and account.
    assert record["decisions"][0]["assurance"] == "verified"
    assert record["decisions"][0]["identity"] == f"jira:{jira.url.removeprefix('http://')}/acc-sam"


def test_jira_down_during_a_promotion_never_blocks_it_and_the_ticket_catches_up(s3, tmp_path, jira, monkeypatch):
    cand = candidate_with_jira_ids(tmp_path, s3, monkeypatch)
    # The model's manifest routes its tickets to another project than CLEARANCE_JIRA_PROJECT (CLR);
    # the queue written during the outage keeps that choice.
    jira.add_project("OPS")
    manifest_path = cand.config_dir / "models" / f"{cand.model}.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest_path.write_text(yaml.safe_dump(manifest | {"notify": {"jira_project": "OPS"}}))
    jira.down = True
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert jira.issues == {}
    queued = json.loads(s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run_id}/jira.json")[0])["queue"]
    assert {"issue", "state/gates_running", "gate/artifact_integrity", "state/awaiting_approval"} <= \
        {op["id"] for op in queued}
    jira.down = False
    # The next successful call (sam's decision, published from this process) writes the backlog.
    assert decide(s3, cand, run_id, "sam").accepted
    ticket = ticket_of(jira, run_id, "Awaiting approval")
    assert any("Gate artifact_integrity" in c["body"] for c in ticket["comments"])
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
    ticket = ticket_of(jira, run_id, "Promoted")
    assert jira.status_history(ticket["key"]) == ["Gates running", "Awaiting approval", "Approved", "Promoted"]
    assert [a["json"]["filename"] for a in ticket["attachments"]] == ["clearance-report.html"]
    assert len(jira.issues) == 1 and ticket["key"].startswith("OPS-")


@pytest.fixture
def jira_server(monkeypatch):
    """A Server/Data Center fake: ``search`` (not ``search/jql``), user names in changelogs, no webhook secret."""
    fake = FakeJira("Server").start()
    for name in ("dana", "sam", "bea", "carl"):
        fake.add_user(name, f"{name}-pw", account_id=f"acc-{name}", email=f"{name}@example.com")
    monkeypatch.delenv("CLEARANCE_JIRA_WEBHOOK_SECRET", raising=False)
    for name, value in {"URL": fake.url, "USERNAME": "clearance-bot", "PASSWORD": "bot-password", "PROJECT": "CLR",
                        "MAX_RETRIES": "1", "BACKOFF_SECONDS": "0.05", "TIMEOUT_SECONDS": "3"}.items():
        monkeypatch.setenv(f"CLEARANCE_JIRA_{name}", value)
    yield fake
    fake.stop()
    assert fake.contract_errors == []


def poll_pass(cand, tmp_path) -> str:
    """One pass of the real poller CLI (``clearance jira-poll --once``) in its own process; returns its log."""
    from tests.integration.promotion_kit import cli

    done = cli(cand, "ops", "jira-poll", "--once")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    return out


def test_polling_a_server_instance_counts_transitions_once_and_resumes_the_run(s3, tmp_path, jira_server,
                                                                               monkeypatch):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from clearance.app.serve.jira_routes import routes
    from clearance.config import load_config_dir
    from clearance.settings.jira import JiraSettings

    jira = jira_server
    cand = candidate_with_jira_ids(tmp_path, s3, monkeypatch)
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    key = ticket_of(jira, run_id, "Awaiting approval")["key"]
    record_key = f"evidence/{cand.model}/1.0.0/{run_id}/approvals.json"

    def decisions():
        return json.loads(s3.get_bytes(record_key)[0])["decisions"]

    # sam (security) moves the ticket in Jira; one pass of the poller counts it.
    jira.transition_as("sam", key, "Approve")
    sam_history = jira.issues[key]["histories"][-1]["id"]
    out = poll_pass(cand, tmp_path)
    assert f"{key}#{sam_history}: counted: sam approve" in out
    assert [(d["principal"], d["channel"]) for d in decisions()] == [("sam", "jira")]
    assert decisions()[0]["channel_evidence"]["source"] == "poll"
    assert decisions()[0]["assurance"] == "verified"  # Server/DC: the user key is pinned (not the name)
    assert decisions()[0]["dedupe_key"] == f"jira:{jira.issues[key]['id']}:{sam_history}"
    assert ("GET", "/rest/api/2/search") in jira.requests and ("GET", "/rest/api/2/search/jql") not in jira.requests
    tally = next(c["body"] for c in jira.issues[key]["comments"] if "Sign-off" in c["body"])
    assert "|security|1|sam|0|" in tally and "|business|1|-|1|" in tally  # the poller's process updated it
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"  # one of two roles: still waiting

    # The same change delivered by a (signed) webhook as well counts once.
    settings = JiraSettings(webhook_secret=SECRET)
    principals = load_config_dir(cand.config_dir).principals
    client = TestClient(Starlette(routes=routes(settings, s3, principals)))
    sam_webhook = next(w for w in jira.webhooks if w["changelog"]["id"] == sam_history)
    assert deliver(client, sam_webhook).json()["results"] == ["duplicate: already received"]
    assert len(decisions()) == 1

    # bea (business) moves it too; the next pass counts her, not sam again, and the run resumes.
    jira.transition_as("bea", key, "Request approval")
    jira.transition_as("bea", key, "Approve")
    bea_history = jira.issues[key]["histories"][-1]["id"]
    out = poll_pass(cand, tmp_path)
    assert f"{key}#{bea_history}: counted: bea approve" in out
    assert f"{key}#{sam_history}: duplicate: already received" in out
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]

    record = json.loads(s3.get_bytes(record_key)[0])
    assert record["outcome"] == "approved"
    assert sorted((d["principal"], d["channel"]) for d in record["decisions"]) == [("bea", "jira"), ("sam", "jira")]
    ticket = ticket_of(jira, run_id, "Promoted")
    assert [a["json"]["filename"] for a in ticket["attachments"]] == ["clearance-report.html"]
    assert len(jira.issues) == 1
    # After the request closed, neither path counts anything more.
    bea_webhook = next(w for w in jira.webhooks if w["changelog"]["id"] == bea_history)
    assert deliver(client, bea_webhook).json()["results"] == ["ignored: request already approved"]
    assert "counted" not in poll_pass(cand, tmp_path)
    assert len(json.loads(s3.get_bytes(record_key)[0])["decisions"]) == 2

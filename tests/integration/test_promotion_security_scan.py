"""The security_scan gate inside real promotions: real Prefect, real SeaweedFS, the run in a subprocess,
the local Slack and Jira.

A candidate whose joblib is poisoned (its pickle stream calls ``os.system``) stops at the gate: the
finding — file, byte offset, callable — is in the gate evidence and its table, the ledger, the report,
``clearance status``, the Slack thread and the Jira ticket. A clean candidate (a scikit-learn model,
pinned requirements, a config file) clears the gate — it warns only about what SeaweedFS cannot tell
(the public access block) and the sample advisory database's age — and is promoted after sign-off.
Nothing here ever loads a pickle.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml

from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack
from tests.integration.promotion_kit import (
    POLICY_HIGH,
    PRINCIPALS,
    Candidate,
    cli,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHANNEL = "C0SCAN00001"
SCAN_CONFIG: dict[str, Any] = {
    "allowed_formats": ["joblib"], "unknown_callable": "fail",
    "dependencies": {"required": True, "unpinned": "fail", "fail_at": "high", "advisory_max_age": "7d"},
    "secrets": "fail", "storage": {"unknown": "warn", "require": ["policy"]},
}


class Payload:
    """Pickles to ``os.system(...)``; dumping it runs nothing, and nothing here loads it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, ("echo pwned",)


def poisoned_joblib() -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"coef": np.arange(8.0), "hook": Payload()}, buffer)
    return buffer.getvalue()


def clean_joblib() -> bytes:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 4))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, (x[:, 1] > 0).astype(int))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


REQUIREMENTS = b"scikit-learn==1.9.1\nnumpy==2.4.6\njoblib==1.6.0\n"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def channels(s3, monkeypatch) -> Iterator[tuple[FakeSlack, FakeJira]]:
    """The local Slack and Jira, with ``CLEARANCE_SLACK_*`` / ``CLEARANCE_JIRA_*`` for the run's process, and the
    sample advisory database."""
    from clearance.settings import get_settings

    slack = FakeSlack(channels=(CHANNEL,), users={p["slack_id"]: p["email"] for p in PRINCIPALS}).start()
    jira = FakeJira("Cloud").start()
    for name in ("dana", "sam", "bea"):
        jira.add_user(name, f"{name}-pw", account_id=f"acc-{name}", email=f"{name}@example.com")
    for name, value in slack.env(CHANNEL, "scan-signing-secret").items():
        monkeypatch.setenv(name, value)
    for name, value in {"URL": jira.url, "EMAIL": "bot@example.com", "API_TOKEN": "bot-password", "PROJECT": "CLR",
                        "MAX_RETRIES": "1", "BACKOFF_SECONDS": "0.05", "TIMEOUT_SECONDS": "3"}.items():
        monkeypatch.setenv(f"CLEARANCE_JIRA_{name}", value)
    monkeypatch.setenv("CLEARANCE_ADVISORY_DB", str(REPO / "configs" / "advisories"))
    get_settings.cache_clear()
    try:
        yield slack, jira
    finally:
        slack.stop()
        jira.stop()
        get_settings.cache_clear()


def scan_candidate(tmp_path: Path, s3, version: str, model_bytes: bytes, extra_files: dict[str, bytes]) -> Candidate:
    """A candidate under a high tier running artifact_integrity then security_scan, whose ``version`` is
    ``model.joblib`` (these bytes, pinned) with a requirements file and other bundle files."""
    policy = copy.deepcopy(POLICY_HIGH)
    policy["gates"].append({"id": "security_scan", "mode": "blocking", "config": SCAN_CONFIG})
    cand = make_candidate(tmp_path, s3, versions=("0.0.1",), policy=policy)  # its 0.0.1 is never promoted here
    prefix = f"candidates/{cand.model}/{version}/"
    s3.put_if_absent(prefix + "model.joblib", model_bytes)
    for name, body in extra_files.items():
        s3.put_if_absent(prefix + name, body)
    path = cand.config_dir / "models" / f"{cand.model}.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["versions"][version] = {
        "artifacts": [{"key": prefix + "model.joblib", "sha256": hashlib.sha256(model_bytes).hexdigest(),
                       "size": len(model_bytes), "format": "joblib"}],
        "requirements": prefix + "requirements.txt"}
    path.write_text(yaml.safe_dump(manifest))
    cand.digests[version] = hashlib.sha256(model_bytes).hexdigest()
    return cand


def wait_for(check, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def slack_texts(fake: FakeSlack) -> list[str]:
    """Every message the fake Slack holds, as its text and blocks in one string."""
    return [json.dumps({"text": m.get("text"), "blocks": m.get("blocks")}) for m in list(fake.messages.values())]


# --------------------------------------------------------------------------- tests


def test_a_poisoned_joblib_stops_the_promotion_and_everyone_sees_why(s3, tmp_path, channels):
    from tasks.jira_tracking import run_label
    from tasks.ledger import read_ledger

    slack, jira = channels
    cand = scan_candidate(tmp_path, s3, "2.0.0", poisoned_joblib(), {"requirements.txt": REQUIREMENTS})
    key = f"candidates/{cand.model}/2.0.0/model.joblib"
    proc = start_direct_run(cand, "2.0.0", log=tmp_path / "run.log")
    assert finish(proc, timeout=240) != 0, (tmp_path / "run.log").read_text()[-3000:]
    run_id = find_run(cand.model, "2.0.0")
    prefix = f"evidence/{cand.model}/2.0.0/{run_id}/"

    # the gate result: the callables check names file, offset and callable
    gate = json.loads(s3.get_bytes(prefix + "gate-security_scan.json")[0])
    assert gate["status"] == "fail" and gate["blocking"] is True
    checks = {c["id"]: c for c in gate["checks"]}
    finding = checks[f"callables:{key}"]
    assert finding["status"] == "fail"
    assert f"{key}: denied: posix.system at byte " in finding["message"]
    assert checks[f"model_file:{key}"]["status"] == "pass"
    assert checks["dependencies"]["status"] == "pass"
    # the evidence table was uploaded next to it, with its digest in the result
    (table_file,) = [e for e in gate["evidence"] if e["name"] == "security_scan_files.json"]
    body = s3.get_bytes(prefix + "security_scan_files.json")[0]
    assert hashlib.sha256(body).hexdigest() == table_file["sha256"]
    table = json.loads(body)
    denied = [row for row in table["callables"] if row["verdict"] == "denied"]
    assert {row["callable"] for row in denied} == {"posix.system"} and all(row["file"] == key for row in denied)
    assert str(denied[0]["offset"]) in finding["message"]
    assert table["files"][0]["sha256"] == cand.digests["2.0.0"]

    # the ledger: the gate result (by digest) and the run's end
    entries = [e for e in read_ledger(s3, cand.model) if e.payload.get("run") == run_id or e.kind == "gate"]
    kinds = [e.kind for e in entries]
    assert kinds[0] == "started" and kinds[-1] == "gate-failed", kinds
    scan_entry = next(e for e in entries if e.kind == "gate" and e.payload["gate"] == "security_scan")
    assert scan_entry.payload["status"] == "fail"
    assert scan_entry.payload["evidence"] == prefix + "gate-security_scan.json"
    assert entries[-1].payload["reason"] == "gate security_scan fail: promotion stopped"

    # the report
    report = s3.get_bytes(prefix + "report.md")[0].decode()
    assert f"callables:{key}" in report and "posix.system" in report

    # clearance status
    status = cli(cand, "dana", "status", run_id, "--model", cand.model)
    assert "security_scan" in status.stdout and "posix.system" in status.stdout, status.stdout + status.stderr

    # Slack: the thread has the gate's reply with the finding
    wait_for(lambda: any("security_scan" in t and "posix.system" in t for t in slack_texts(slack)), what="Slack")
    # Jira: the ticket of the run has a comment with the finding
    def jira_comment() -> bool:
        with jira.lock:
            found = jira.issues_with_label(run_label(run_id))
            return len(found) == 1 and any("security_scan" in c["body"] and "posix.system" in c["body"]
                                           for c in found[0]["comments"])
    wait_for(jira_comment, what="Jira")
    assert jira.contract_errors == []


def test_a_clean_candidate_clears_the_gate_and_is_promoted(s3, tmp_path, channels):
    from tasks.ledger import read_ledger

    files = {"requirements.txt": REQUIREMENTS, "config.yaml": b"threshold: 0.4\nfeatures: [a, b, c, d]\n"}
    cand = scan_candidate(tmp_path, s3, "3.0.0", clean_joblib(), files)
    key = f"candidates/{cand.model}/3.0.0/model.joblib"
    proc = start_direct_run(cand, "3.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "3.0.0")
    wait_for_request(s3, run_id, timeout=240)
    prefix = f"evidence/{cand.model}/3.0.0/{run_id}/"
    gate = json.loads(s3.get_bytes(prefix + "gate-security_scan.json")[0])
    checks = {c["id"]: c for c in gate["checks"]}
    assert gate["status"] in ("pass", "warn"), [c for c in gate["checks"] if c["status"] not in ("pass", "skipped")]
    assert checks[f"model_file:{key}"]["status"] == "pass"
    assert checks[f"callables:{key}"]["status"] == "pass", checks[f"callables:{key}"]["message"]
    assert checks["dependencies"]["status"] == "pass" and checks["advisory_db"]["status"] == "pass"
    assert not [c for c in checks if c.startswith("advisory:")]
    assert checks["secrets"]["status"] == "pass" and "2 text file(s)" in checks["secrets"]["message"]
    # the store's posture was read: SeaweedFS answers everything but the public access block
    bucket = s3.bucket
    assert checks[f"storage:{bucket}:policy"]["status"] == "pass"
    assert checks[f"storage:{bucket}:public_access_block"]["status"] == "warn"
    assert "not implemented" in checks[f"storage:{bucket}:public_access_block"]["message"]
    assert {c["status"] for c in gate["checks"]} <= {"pass", "warn", "skipped"}

    assert decide(s3, cand, run_id, "sam").accepted
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc, timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
    kinds = [e.kind for e in read_ledger(s3, cand.model) if e.payload.get("run") == run_id]
    assert kinds[-1] == "promoted", kinds
    # the local copy of the candidate was deleted once the gates had decided
    from tasks.candidate_files import candidate_folder

    assert not candidate_folder(run_id).exists()

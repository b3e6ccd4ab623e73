"""The compliance_review gate inside real promotions: real Prefect, real SeaweedFS, the run in a subprocess,
the local Slack and Jira.

A complete candidate (model card, KPI, lineage, operations, a fair predictions dataset, the regulatory
mapping of its config dir) clears the gate after data_check — the scorecard sees data_check through
``earlier_gates`` and warns only about what no gate of this tier can show (security, cost), and the
candidate is compared with the live version's stored evidence (the champion) — and the report carries
the scorecard. A candidate whose train data holds an undeclared email column stops the
promotion at compliance_review: the evidence has masked examples, and the raw address is nowhere a person
or a log can read it (gate result, evidence file, report, bundle, ledger, Slack, Jira, the run's log).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.compliance_kit import (
    RAW_EMAIL_DOMAIN,
    REGULATORY,
    manifest,
    predictions_table,
    raw_email,
    train_table,
    write_parquet,
)
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack
from tests.integration.promotion_kit import (
    FAKE_JOBLIB,
    POLICY_HIGH,
    PRINCIPALS,
    Candidate,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
)

pytestmark = pytest.mark.integration

CHANNEL = "C0COMPL0001"
VERSION = "1.0.0"


@pytest.fixture
def channels(s3, monkeypatch) -> Iterator[tuple[FakeSlack, FakeJira]]:
    """The local Slack and Jira, with ``CLEARANCE_SLACK_*`` / ``CLEARANCE_JIRA_*`` for the run's process."""
    from clearance.settings import get_settings

    slack = FakeSlack(channels=(CHANNEL,), users={p["slack_id"]: p["email"] for p in PRINCIPALS}).start()
    jira = FakeJira("Cloud").start()
    for name, value in slack.env(CHANNEL, "compliance-signing-secret").items():
        monkeypatch.setenv(name, value)
    for name, value in {"URL": jira.url, "EMAIL": "bot@example.com", "API_TOKEN": "bot-password", "PROJECT": "CLR",
                        "MAX_RETRIES": "1", "BACKOFF_SECONDS": "0.05", "TIMEOUT_SECONDS": "3"}.items():
        monkeypatch.setenv(f"CLEARANCE_JIRA_{name}", value)
    get_settings.cache_clear()
    try:
        yield slack, jira
    finally:
        slack.stop()
        jira.stop()
        get_settings.cache_clear()


def compliance_candidate(tmp_path: Path, s3, *, emails: bool) -> Candidate:
    """A high tier running artifact_integrity, data_check and compliance_review on a version whose artifact,
    train data and predictions are uploaded and pinned, with the regulatory mapping in its config dir."""
    policy = copy.deepcopy(POLICY_HIGH)
    policy["regulatory_tags"] = ["gdpr"]
    policy["gates"] += [{"id": "data_check", "mode": "blocking"},
                        {"id": "compliance_review", "mode": "blocking"}]
    cand = make_candidate(tmp_path, s3, versions=("0.0.1",), policy=policy)
    prefix = f"candidates/{cand.model}/{VERSION}/"
    body = FAKE_JOBLIB + f"{cand.model}:{VERSION}".encode() + bytes(256)
    s3.put_if_absent(prefix + "model.joblib", body)
    cand.digests[VERSION] = hashlib.sha256(body).hexdigest()
    pins = {}
    for role, table in (("train", train_table(emails=emails)), ("predictions", predictions_table())):
        local = tmp_path / "data" / f"{role}.parquet"
        pins[role] = (prefix + f"{role}.parquet", write_parquet(local, table))
        s3.put_if_absent(pins[role][0], local.read_bytes())
    doc = manifest(cand.model, VERSION, artifact_key=prefix + "model.joblib", artifact_sha256=cand.digests[VERSION],
                   datasets=pins)
    (cand.config_dir / "models" / f"{cand.model}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (cand.config_dir / "regulatory.yaml").write_text(yaml.safe_dump(REGULATORY, sort_keys=False))
    return cand


def gate_result(s3, prefix: str) -> dict[str, Any]:
    return json.loads(s3.get_bytes(prefix + "gate-compliance_review.json")[0])


def put_champion(s3, cand: Candidate, predictions_sha256: str) -> None:
    """Version 0.0.1 live (the pointer), with the compliance_review evidence of the run that promoted it."""
    from clearance.core.keys import gate_result_name, pointer_key, run_prefix
    from gates.base import GateResult
    from tasks.promotion import ProductionPointer

    pointer = ProductionPointer(model=cand.model, version="0.0.1", artifact_digest="a" * 64, artifacts={},
                                run_id="prod-run-1")
    s3.put_if_absent(pointer_key(cand.model, "production"), pointer.model_dump_json().encode())
    result = GateResult(gate_id="compliance_review", gate_version="1.0.0", status="pass",
                        metrics={"evaluation.auc": 0.95, "evaluation.ece": 0.2, "readiness.present": 9.0},
                        input_digests={"dataset:predictions": predictions_sha256})
    s3.put_if_absent(run_prefix(cand.model, "0.0.1", "prod-run-1") + gate_result_name("compliance_review"),
                     result.to_evidence_json())


def test_a_complete_candidate_clears_compliance_review_with_the_scorecard_in_the_report(s3, tmp_path):
    cand = compliance_candidate(tmp_path, s3, emails=False)
    doc = yaml.safe_load((cand.config_dir / "models" / f"{cand.model}.yaml").read_text())
    pinned = {d["role"]: d["sha256"] for d in doc["versions"][VERSION]["datasets"]}
    put_champion(s3, cand, pinned["predictions"])
    proc = start_direct_run(cand, VERSION, dry_run=True, log=tmp_path / "run.log")
    assert finish(proc, timeout=120) == 0, (tmp_path / "run.log").read_text()[-3000:]
    run_id = find_run(cand.model, VERSION)
    prefix = f"evidence/{cand.model}/{VERSION}/{run_id}/"

    gate = gate_result(s3, prefix)
    checks = {c["id"]: c for c in gate["checks"]}
    not_passing = {c["id"]: c["status"] for c in gate["checks"] if c["status"] not in ("pass", "skipped")}
    # only what no gate of this tier can show warns: no security_scan in the tier, no cost gate shipped
    assert not_passing == {"readiness:security": "warn", "readiness:cost_model": "warn"}, not_passing
    assert gate["status"] == "warn"
    # the scorecard read data_check's result from earlier_gates, the regulatory map from the config dir
    assert checks["readiness:data_readiness"]["observed"] == "data_check pass"
    assert checks["regulatory:gdpr:gdpr-art-5-minimisation"]["status"] == "pass"
    assert checks["readiness:executive_sponsor"]["status"] == "pass"
    # the champion (0.0.1, live) was read from its own evidence (tasks/champion.py) and compared
    assert checks["business:champion:auc"]["status"] == "pass"
    assert "champion 0.0.1" in checks["business:champion:auc"]["message"]
    assert gate["metrics"]["evaluation.auc"] > 0.95 - 0.01
    assert gate["input_digests"]["dataset:predictions"] == pinned["predictions"]

    report = s3.get_bytes(prefix + "report.md")[0].decode()
    for title in ("Executive sponsor", "Data readiness", "Cost model"):  # the scorecard (clearance/render/scorecard.py)
        assert title in report, report[:3000]


def test_undeclared_emails_stop_the_promotion_and_are_never_shown_raw(s3, tmp_path, channels):
    from tasks.jira_tracking import run_label
    from tasks.ledger import read_ledger

    slack, jira = channels
    cand = compliance_candidate(tmp_path, s3, emails=True)
    proc = start_direct_run(cand, VERSION, log=tmp_path / "run.log")
    assert finish(proc, timeout=120) != 0, (tmp_path / "run.log").read_text()[-3000:]
    run_id = find_run(cand.model, VERSION)
    prefix = f"evidence/{cand.model}/{VERSION}/{run_id}/"

    entries = [e for e in read_ledger(s3, cand.model) if e.payload.get("run") == run_id or e.kind == "gate"]
    assert entries[-1].kind == "gate-failed", [e.kind for e in entries]
    assert entries[-1].payload["reason"] == "gate compliance_review fail: promotion stopped"

    gate = gate_result(s3, prefix)
    assert gate["status"] == "fail"
    finding = {c["id"]: c for c in gate["checks"]}["personal_data:train:contact"]
    assert finding["status"] == "fail" and "undeclared personal data: email" in finding["message"]
    examples = finding["observed"]["detections"][0]["examples"]
    assert examples and all("***" in e for e in examples)

    # everything stored for the run, the ledger, the channels and the run's log: no raw address anywhere
    def leaks(text: str) -> bool:
        return raw_email(0) in text or RAW_EMAIL_DOMAIN in text

    stored = {key: s3.get_bytes(key)[0].decode("utf-8", "replace") for key in s3.list_keys(prefix)}
    assert {prefix + "gate-compliance_review.json", prefix + "report.md", prefix + "bundle.json"} <= set(stored)
    assert [key for key, text in stored.items() if leaks(text)] == []
    assert "personal_data:train:contact" in stored[prefix + "report.md"]
    assert not leaks(json.dumps([e.model_dump(mode="json") for e in read_ledger(s3, cand.model)]))
    assert not leaks((tmp_path / "run.log").read_text(errors="replace"))

    def text(value: Any) -> str:  # attachments (the report) are bytes
        return json.dumps(value, default=lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))

    def told() -> tuple[str, str]:
        with jira.lock:
            tickets = text(jira.issues_with_label(run_label(run_id)))
        return text(list(slack.messages.values())), tickets

    deadline = time.monotonic() + 30
    slack_text, jira_text = told()
    while time.monotonic() < deadline and not ("compliance_review" in slack_text and "compliance_review" in jira_text):
        time.sleep(0.2)
        slack_text, jira_text = told()
    assert "compliance_review" in slack_text and "compliance_review" in jira_text
    assert not leaks(slack_text) and not leaks(jira_text)

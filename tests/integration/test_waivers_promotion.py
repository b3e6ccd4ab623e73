"""Waivers in a real promotion: a waived failure lets the run go on and shows up waived, with its reason,
in the gate evidence, the report and the ledger; an expired waiver waives nothing.

Each test's policy allows only ONNX, so the joblib candidate's ``format:`` check fails.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.integration.promotion_kit import (
    POLICY_HIGH,
    Candidate,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
)

pytestmark = pytest.mark.integration

REASON = "Legacy joblib artifact; ONNX export tracked in ML-482"


def onnx_only_candidate(tmp_path, s3) -> Candidate:
    policy = copy.deepcopy(POLICY_HIGH)
    policy["gates"][0]["config"]["allowed_formats"] = ["onnx"]
    return make_candidate(tmp_path, s3, policy=policy)


def write_waiver(cand: Candidate, expires_at: datetime, check: str = "format:*") -> None:
    waiver = {"gate": "artifact_integrity", "check": check, "model": cand.model, "versions": ["1.*"],
              "reason": REASON, "approved_by": "sam", "expires_at": expires_at.isoformat()}
    (cand.config_dir / "waivers.yaml").write_text(yaml.safe_dump({"waivers": [waiver]}))


def evidence(s3, cand: Candidate, run_id: str, name: str) -> bytes:
    return s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run_id}/{name}")[0]


def test_waived_format_failure_lets_the_dry_run_pass(s3, tmp_path):
    cand = onnx_only_candidate(tmp_path, s3)
    write_waiver(cand, datetime.now(UTC) + timedelta(days=30))
    proc = start_direct_run(cand, "1.0.0", dry_run=True, log=tmp_path / "dry.log")
    assert finish(proc) == 0, (tmp_path / "dry.log").read_text()[-3000:]
    run_id = find_run(cand.model, "1.0.0")

    gate = json.loads(evidence(s3, cand, run_id, "gate-artifact_integrity.json"))
    assert gate["status"] == "waived"
    checks = {c["id"].split(":")[0]: c for c in gate["checks"]}
    fmt = checks["format"]
    assert fmt["status"] == "waived" and fmt["original_status"] == "fail"
    assert REASON in fmt["waiver"] and "approved by sam" in fmt["waiver"]
    assert {checks[k]["status"] for k in ("exists", "sha256", "size")} == {"pass"}
    # The gates cleared: the dry run got as far as naming the approvers.
    dry = json.loads(evidence(s3, cand, run_id, "dry-run.json"))
    assert dry["eligible"] == {"business": ["bea"], "security": ["sam", "sol"]}
    report = evidence(s3, cand, run_id, "report.md").decode()
    assert report.startswith(f"# {cand.model} 1.0.0: DRY-RUN\n")
    assert "| artifact_integrity | blocking | waived |" in report and f"waived: {REASON}" in report


def test_expired_waiver_waives_nothing_and_the_gate_fails(s3, tmp_path):
    from tasks.ledger import read_ledger

    cand = onnx_only_candidate(tmp_path, s3)
    write_waiver(cand, datetime.now(UTC) - timedelta(minutes=1))
    dry = start_direct_run(cand, "1.0.0", dry_run=True, log=tmp_path / "dry.log")
    assert finish(dry) == 0, (tmp_path / "dry.log").read_text()[-3000:]
    run_id = find_run(cand.model, "1.0.0")
    gate = json.loads(evidence(s3, cand, run_id, "gate-artifact_integrity.json"))
    assert gate["status"] == "fail"
    fmt = next(c for c in gate["checks"] if c["id"].startswith("format:"))
    assert fmt["status"] == "fail" and fmt["waiver"] is None and fmt["original_status"] is None
    assert evidence(s3, cand, run_id, "report.md").decode().startswith(f"# {cand.model} 1.0.0: DRY-RUN: GATE-FAILED")
    assert not s3.list_keys(f"evidence/{cand.model}/1.0.0/{run_id}/dry-run.json")

    # A real run stops at the gate and says so in the ledger.
    real = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    assert finish(real) != 0
    entries = read_ledger(s3, cand.model)
    assert [e.kind for e in entries] == ["started", "gate", "gate-failed"]
    assert entries[1].payload["status"] == "fail"


def test_waived_gate_is_recorded_waived_in_the_ledger_and_the_run_promotes(s3, tmp_path):
    from tasks.ledger import read_ledger

    cand = onnx_only_candidate(tmp_path, s3)
    write_waiver(cand, datetime.now(UTC) + timedelta(days=30), check=f"format:{cand.key('1.0.0')}")
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert decide(s3, cand, run_id, "sam").accepted
    assert decide(s3, cand, run_id, "bea").accepted
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
    entries = read_ledger(s3, cand.model)
    assert [e.kind for e in entries] == ["started", "gate", "approval-requested", "approved", "promoting",
                                         "promoted"]
    assert entries[1].payload["status"] == "waived"

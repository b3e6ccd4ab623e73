"""The readiness scorecard: each factor's evidence, its status rules and its message format."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from gates.base import CheckResult, Status
from gates.compliance_review.config import ReadinessConfig, ReadinessFactor
from gates.compliance_review.model_card import read_model_card
from gates.compliance_review.readiness import FACTORS, TITLES, Facts, score_readiness

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MANIFEST: dict[str, Any] = {
    "risk_tier": "high", "intended_use": "Weekly churn-risk ranking for the retention team.",
    "sponsor": "Maria Lopez, VP Customer Success", "serving_endpoint": "https://models.example.com/churn",
    "kpi": {"metric": "monthly_churn_rate", "baseline": 0.042, "target": 0.036, "owner": "dana",
            "review_date": "2027-06-30"},
    "operations": {"consumers": ["retention-dialer"], "runbook": "https://wiki.example.com/runbook",
                   "on_call": "ml-platform-oncall", "monitoring": "https://grafana.example.com/d/churn",
                   "ci": "https://ci.example.com/churn"},
    "versions": {"1.0.0": {"artifacts": [{"key": "m.joblib", "sha256": "a" * 64}],
                           "datasets": [{"role": "train", "uri": "s3://d/t.parquet", "sha256": "b" * 64}],
                           "lineage": {"code_revision": COMMIT, "training_run": "prefect:42"}}},
}
PASSED = {"data_check": {"status": "pass"}, "security_scan": {"status": "pass"}}


def _score(manifest: dict[str, Any] | None = None, checks: list[CheckResult] | None = None,
           earlier: dict[str, Any] | None = PASSED, config: ReadinessConfig | None = None,
           ) -> tuple[dict[str, CheckResult], list[dict[str, Any]]]:
    manifest = MANIFEST if manifest is None else manifest
    checks = [CheckResult(id="model_card", status=Status.PASS)] if checks is None else checks
    facts = Facts(manifest=manifest, version="1.0.0", card=read_model_card(manifest, None), checks=checks,
                  earlier_gates=earlier, today=date(2026, 12, 1))
    result, rows = score_readiness(facts, config or ReadinessConfig())
    return {c.id.removeprefix("readiness:"): c for c in result}, rows


def test_factors_follow_the_config_order_with_titles() -> None:
    assert list(FACTORS) == list(ReadinessFactor.__args__)  # type: ignore[attr-defined]
    checks, rows = _score()
    assert list(checks) == list(FACTORS) and [r["factor"] for r in rows] == list(FACTORS)
    assert [r["title"] for r in rows] == [TITLES[f] for f in FACTORS]


def test_a_complete_candidate_misses_only_the_cost_model() -> None:
    checks, rows = _score()
    assert {f: c.status for f, c in checks.items() if c.status is not Status.PASS} == {"cost_model": Status.WARN}
    assert checks["executive_sponsor"].message == "Executive sponsor: sponsor Maria Lopez, VP Customer Success"
    assert checks["data_readiness"].observed == "data_check pass"
    assert checks["cost_model"].message.startswith("Cost model: missing — ")
    assert [r["missing"] for r in rows].count(True) == 1


@pytest.mark.parametrize(("path", "factor"), [
    ("sponsor", "executive_sponsor"), ("intended_use", "use_case_and_kpi"), ("kpi.owner", "use_case_and_kpi"),
    ("operations.ci", "mlops_foundation"), ("operations.monitoring", "mlops_foundation"),
    ("serving_endpoint", "integration_plan"), ("operations.consumers", "integration_plan"),
    ("operations.runbook", "change_management"), ("operations.on_call", "change_management"),
    ("versions.1.0.0.lineage", "mlops_foundation"),
])
def test_each_missing_piece_makes_its_factor_missing(path: str, factor: str) -> None:
    manifest = copy.deepcopy(MANIFEST)
    *parents, last = path.split(".") if not path.startswith("versions") else ["versions", "1.0.0", "lineage"]
    node = manifest
    for key in parents:
        node = node[key]
    node[last] = [] if last == "consumers" else None
    checks, _ = _score(manifest)
    missing = {f for f, c in checks.items() if c.status is not Status.PASS}
    if path.startswith("versions"):  # lineage failing is evidence that fails, not missing evidence
        assert missing == {factor, "cost_model"} and checks[factor].status is Status.FAIL
        return
    assert missing == {factor, "cost_model"}
    assert checks[factor].status is Status.WARN and "missing — " in checks[factor].message


@pytest.mark.parametrize(("status", "expected"), [("pass", Status.PASS), ("warn", Status.PASS),
                                                  ("waived", Status.PASS), ("fail", Status.FAIL),
                                                  ("error", Status.FAIL)])
def test_earlier_gate_status_maps_to_its_factor(status: str, expected: Status) -> None:
    checks, _ = _score(earlier={"data_check": {"status": status}, "security_scan": {"status": status},
                                "cost": {"status": status}})
    for factor in ("data_readiness", "security", "cost_model"):
        assert checks[factor].status is expected
        # a warning counts as evidence that exists, and is named, not hidden
        assert status in str(checks[factor].observed) and status in checks[factor].message


def test_gates_that_did_not_run_are_missing() -> None:
    checks, _ = _score(earlier={})
    assert checks["data_readiness"].status is Status.WARN and "data_check did not run" in \
        checks["data_readiness"].message
    checks, _ = _score(earlier=None)
    assert "pre-flight" in checks["security"].message


def test_compliance_reflects_this_gates_checks() -> None:
    warn = [CheckResult(id="model_card", status=Status.PASS), CheckResult(id="fairness:x:y", status=Status.WARN)]
    compliance = _score(checks=warn)[0]["compliance"]
    assert compliance.status is Status.PASS and "1 of 2 compliance check(s) warn" in compliance.message
    fail = [*warn, CheckResult(id="lineage:training_run", status=Status.ERROR)]
    assert _score(checks=fail)[0]["compliance"].status is Status.FAIL
    assert _score(checks=[])[0]["compliance"].status is Status.WARN  # nothing judged: missing


def test_kpi_checks_of_the_gate_are_used_when_present() -> None:
    checks = [CheckResult(id="kpi:owner", status=Status.FAIL), CheckResult(id="kpi:metric", status=Status.PASS)]
    result, _ = _score(checks=checks)
    assert result["use_case_and_kpi"].status is Status.WARN
    assert "a complete KPI" in result["use_case_and_kpi"].message


def test_missing_action_and_required_factors() -> None:
    manifest = {**MANIFEST, "sponsor": None}
    failing, _ = _score(manifest, config=ReadinessConfig(missing="fail"))
    assert failing["executive_sponsor"].status is Status.FAIL and failing["cost_model"].status is Status.FAIL
    required, _ = _score(manifest, config=ReadinessConfig(required=["executive_sponsor"]))
    assert required["executive_sponsor"].status is Status.FAIL and required["cost_model"].status is Status.WARN


def test_a_declared_cost_estimate_is_named_but_does_not_replace_the_cost_gate() -> None:
    manifest = copy.deepcopy(MANIFEST)
    manifest["operations"]["cost_model"] = "https://wiki.example.com/churn/cost"
    checks, _ = _score(manifest)
    assert checks["cost_model"].status is Status.WARN and "operations.cost_model" in checks["cost_model"].message


def test_long_text_is_truncated_in_messages() -> None:
    checks, _ = _score({**MANIFEST, "sponsor": "x" * 5000})
    assert len(checks["executive_sponsor"].message) < 200


def test_the_cost_factor_shows_the_cost_gate_figures() -> None:
    cost = {"status": "pass", "metrics": {"cost.per_1000": 0.0123, "cost.per_month": 850.0}}
    checks, _ = _score(earlier={"data_check": {"status": "pass"}, "security_scan": {"status": "pass"}, "cost": cost})
    factor = checks["cost_model"]
    assert factor.status is Status.PASS
    assert "$0.0123 per 1,000 predictions" in factor.message and "$850.00 per month" in factor.message
    failed = {"status": "fail", "metrics": {"cost.per_1000": 3.5}}
    checks, _ = _score(earlier={"cost": failed})
    assert checks["cost_model"].status is Status.FAIL and "$3.50 per 1,000" in checks["cost_model"].message

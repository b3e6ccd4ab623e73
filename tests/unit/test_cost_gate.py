"""The ``cost`` gate: the arithmetic on known inputs, the budgets, where the price comes from, and what it does
without a price or a measured rate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from clearance.config import ConfigError, PolicyOverrides, effective_policy
from clearance.config.schema import Policy
from gates.base import GateInputs, GateResult, Status, run_gate
from gates.compliance_review.config import ReadinessConfig
from gates.compliance_review.readiness import Facts, score_readiness
from gates.cost.arithmetic import (
    HOURS_PER_MONTH,
    CostError,
    cost_per_1000,
    cost_per_month,
    costing,
    hourly_cost,
    instances_needed,
)
from gates.cost.config import CostConfig

REPO = Path(__file__).resolve().parents[2]
HIGH = REPO / "configs" / "policies" / "high.yaml"
CONFIG: dict[str, Any] = {"budget_per_1000": {"warn": 0.05, "fail": 0.10},
                          "budget_per_month": {"warn": 2000, "fail": 5000}, "require_price": True}
SERVING: dict[str, Any] = {"expected_traffic_rps": 40, "instance_type": "ml.m5.large",
                           "instance_price_per_hour": 0.115, "instances": 2}


# --------------------------------------------------------------------------- arithmetic


def test_the_arithmetic_on_known_inputs() -> None:
    # 2 instances at $0.115/h = $0.23/h; they sustain 100 req/s = 360,000 requests/h
    assert hourly_cost(0.115, 2) == pytest.approx(0.23)
    assert cost_per_1000(0.115, 2, 100) == pytest.approx(0.23 / 360)  # $0.000639 per 1,000
    # 50 req/s per instance; 40 req/s expected → 1 instance; 730 h a month
    assert instances_needed(40, 100, 2) == 1
    assert cost_per_month(0.115, 1) == pytest.approx(83.95)
    c = costing(0.115, 2, 100, 40)
    assert (c.needed, c.per_instance_rps) == (1, 50) and c.per_month == pytest.approx(83.95)
    assert HOURS_PER_MONTH == 730


@pytest.mark.parametrize(("expected", "sustainable", "instances", "needed"), [
    (40, 100, 2, 1),        # under one instance's share: still one
    (0.001, 100, 1, 1),     # max(1, …)
    (100, 100, 2, 2),       # exactly two instances' worth: two, not three
    (101, 100, 2, 3),       # a little more: round up
    (1.1, 0.1, 1, 11),      # float division says 11.000000000000002 → 12; exact arithmetic says 11
    (0.3, 0.1, 1, 3),       # float says 2.9999999999999996; still 3
    (1000, 49.9, 1, 21),    # 20.04 → 21
    (40, 12.5, 4, 13),      # 3.125 req/s per instance: 12.8 → 13
])
def test_instances_needed_round_up_exactly(expected: float, sustainable: float, instances: int,
                                           needed: int) -> None:
    assert instances_needed(expected, sustainable, instances) == needed


@pytest.mark.parametrize("rate", [0, 0.0, -5, None, math.nan, math.inf])
def test_no_usable_sustainable_rate_is_an_error_not_a_division_by_zero(rate: float | None) -> None:
    with pytest.raises(CostError, match="sustainable rate"):
        cost_per_1000(0.115, 1, rate)
    with pytest.raises(CostError, match="sustainable rate"):
        instances_needed(40, rate, 1)


@pytest.mark.parametrize(("args", "match"), [((-1, 1), "price"), ((0.1, 0), "instance count"),
                                             ((math.inf, 1), "price"), ((math.nan, 1), "price")])
def test_unusable_prices_and_counts(args: tuple[float, int], match: str) -> None:
    with pytest.raises(CostError, match=match):
        hourly_cost(*args)


def test_a_zero_price_costs_nothing() -> None:
    assert hourly_cost(0, 3) == 0 and cost_per_1000(0, 3, 10) == 0 and cost_per_month(0, 5) == 0


def test_huge_values() -> None:
    assert instances_needed(1e300, 1e-10, 1) == 10**310  # exact integers, no overflow
    with pytest.raises(CostError, match="too large"):
        cost_per_month(1e10, instances_needed(1e300, 1e-10, 1))
    assert cost_per_1000(1e6, 100_000, 1e-3) == pytest.approx(1e11 / 3.6 * 1000)  # $1e11/h over 3.6 requests/h
    with pytest.raises(CostError, match="too large"):
        cost_per_1000(1e300, 10**9, 1e-300)


# --------------------------------------------------------------------------- the gate


def run(serving: dict[str, Any] | None = None, *, sustainable: float | None = 100.0,
        config: dict[str, Any] | None = None, load_test: bool = True, kpi: dict[str, Any] | None = None,
        **extra: Any) -> GateResult:
    manifest: dict[str, Any] = {"name": "churn", "serving": SERVING if serving is None else serving}
    if kpi is not None:
        manifest["kpi"] = kpi
    earlier: dict[str, Any] = {}
    if load_test:
        metrics = {"load_test.p99_ms": 9.0, **({"load_test.sustainable_rps": sustainable} if sustainable else {})}
        earlier["load_test"] = {"status": "pass" if sustainable else "fail", "message": "", "blocking": True,
                                "metrics": metrics}
    inputs = GateInputs(model="churn", version="1.0.0", manifest=manifest,
                        extra={"earlier_gates": earlier, "price_table": {"ml.m5.large": 0.115, "ml.c5.xlarge": 0.204},
                               **extra})
    return run_gate("cost", inputs, CONFIG if config is None else config)


def by_id(result: GateResult) -> dict[str, Any]:
    return {c.id: c for c in result.checks}


def test_a_cheap_model_passes_with_its_metrics() -> None:
    result = run()
    assert result.status is Status.PASS, [c.message for c in result.problems()]
    assert [c.id for c in result.checks] == ["price", "cost_per_1000", "cost_per_month"]
    assert result.metrics["cost.per_1000"] == pytest.approx(0.23 / 360)
    assert result.metrics["cost.per_month"] == pytest.approx(83.95)
    assert result.metrics["cost.instances_needed"] == 1 and result.metrics["cost.price_per_hour"] == 0.115
    assert "manifest" in by_id(result)["price"].message
    assert "$83.95 per month" in result.message


# 2 instances sustaining 1 req/s: 3,600 predictions an hour for 2 × price → per 1,000 = price / 1.8
@pytest.mark.parametrize(("price", "status"), [
    (0.0899, Status.PASS),   # $0.04994
    (0.09, Status.WARN),     # exactly $0.05: the warn level, reached (>=) — float arithmetic would say 0.0499…
    (0.1799, Status.WARN),   # $0.09994
    (0.18, Status.FAIL),     # exactly $0.10: the fail level
    (1.0, Status.FAIL),
])
def test_the_budget_per_1000_decides(price: float, status: Status) -> None:
    result = run({**SERVING, "instance_price_per_hour": price, "expected_traffic_rps": 0.5}, sustainable=1.0)
    check = by_id(result)["cost_per_1000"]
    assert check.status is status, check.message
    assert check.observed == pytest.approx(price / 1.8)


def test_the_budget_per_1000_fails_at_its_level() -> None:
    result = run({**SERVING, "instance_price_per_hour": 0.18}, sustainable=1.0)  # 0.36 $/h over 3,600 requests
    assert by_id(result)["cost_per_1000"].observed == pytest.approx(0.1)
    assert by_id(result)["cost_per_1000"].status is Status.FAIL and result.status is Status.FAIL


# 2 instances sustaining 100 req/s: 50 req/s per instance, $0.115 × 730 = $83.95 per instance-month
@pytest.mark.parametrize(("expected_rps", "needed", "status"), [
    (40, 1, Status.PASS),        # $83.95
    (1150, 23, Status.PASS),     # $1,930.85
    (1200, 24, Status.WARN),     # $2,014.80
    (2950, 59, Status.WARN),     # $4,953.05
    (3000, 60, Status.FAIL),     # $5,037.00
])
def test_the_budget_per_month_decides(expected_rps: float, needed: int, status: Status) -> None:
    result = run({**SERVING, "expected_traffic_rps": expected_rps})
    check = by_id(result)["cost_per_month"]
    assert check.observed == pytest.approx(needed * 83.95) and check.status is status, check.message
    assert result.metrics["cost.instances_needed"] == needed
    assert f"{needed:,} instance(s)" in check.message


def test_the_price_table_gives_the_price_of_the_instance_type() -> None:
    serving = {k: v for k, v in SERVING.items() if k != "instance_price_per_hour"} | {"instance_type": "ml.c5.xlarge"}
    result = run(serving)
    assert result.metrics["cost.price_per_hour"] == 0.204
    assert "price table" in by_id(result)["price"].message and "ml.c5.xlarge" in by_id(result)["price"].message


def test_the_manifest_price_wins_over_the_table() -> None:
    assert run().metrics["cost.price_per_hour"] == 0.115
    assert run({**SERVING, "instance_type": "ml.c5.xlarge"}).metrics["cost.price_per_hour"] == 0.115


@pytest.mark.parametrize("serving", [{"expected_traffic_rps": 40, "instance_type": "ml.p4d.24xlarge"},
                                     {"expected_traffic_rps": 40}])
def test_no_price_fails_or_is_skipped(serving: dict[str, Any]) -> None:
    result = run(serving)
    assert by_id(result)["price"].status is Status.FAIL and result.status is Status.FAIL
    assert by_id(result)["cost_per_1000"].status is Status.SKIPPED
    if "instance_type" in serving:
        assert "ml.p4d.24xlarge" in by_id(result)["price"].message
    lenient = run(serving, config={**CONFIG, "require_price": False})
    assert by_id(lenient)["price"].status is Status.SKIPPED and lenient.status is Status.SKIPPED


def test_the_tier_default_price_is_the_last_resort() -> None:
    result = run({"expected_traffic_rps": 40}, config={**CONFIG, "price_per_hour": 0.5})
    assert result.metrics["cost.price_per_hour"] == 0.5 and "tier's default" in by_id(result)["price"].message


def test_instances_default_to_one() -> None:
    serving = {k: v for k, v in SERVING.items() if k != "instances"}
    result = run(serving)
    assert result.metrics["cost.per_1000"] == pytest.approx(0.115 / 360)


def test_no_expected_traffic_fails_the_monthly_cost() -> None:
    serving = {k: v for k, v in SERVING.items() if k != "expected_traffic_rps"}
    result = run(serving)
    assert by_id(result)["cost_per_month"].status is Status.FAIL and "cost.per_month" not in result.metrics
    assert by_id(result)["cost_per_1000"].status is Status.PASS
    lenient = run(serving, config={**CONFIG, "require_traffic": False})
    assert by_id(lenient)["cost_per_month"].status is Status.SKIPPED and lenient.status is Status.PASS


def test_nothing_measured_is_an_error() -> None:
    no_rate = run(sustainable=None)
    assert no_rate.status is Status.ERROR
    assert "nothing measured" in by_id(no_rate)["cost_per_1000"].message
    assert "load_test (fail)" in by_id(no_rate)["cost_per_1000"].message
    assert by_id(no_rate)["price"].status is Status.PASS  # the price is still reported
    no_gate = run(load_test=False)
    assert no_gate.status is Status.ERROR and "did not run" in by_id(no_gate)["cost_per_month"].message


def test_a_preflight_without_a_load_test_is_skipped() -> None:
    result = run(load_test=False, preflight=True)
    assert {by_id(result)[c].status for c in ("cost_per_1000", "cost_per_month")} == {Status.SKIPPED}
    assert "pre-flight" in by_id(result)["cost_per_1000"].message


def test_the_message_shows_the_costs_next_to_the_kpi() -> None:
    result = run(kpi={"metric": "churn_rate", "baseline": 0.12, "target": 0.1})
    assert result.message.startswith("KPI churn_rate: $0.000639 per 1,000 predictions, $83.95 per month")


def test_a_passing_cost_gate_passes_the_readiness_factor() -> None:
    from datetime import date

    result = run()
    facts = Facts(manifest={}, version="1.0.0", card=None, checks=[], today=date(2026, 12, 1),
                  earlier_gates={"cost": {"status": result.status.value, "metrics": result.metrics}})
    checks, _ = score_readiness(facts, ReadinessConfig())
    assert {c.id: c.status for c in checks}["readiness:cost_model"] is Status.PASS


# --------------------------------------------------------------------------- config


def test_budgets_are_ordered_and_positive() -> None:
    with pytest.raises(ValidationError, match="must not be above fail"):
        CostConfig.model_validate({"budget_per_1000": {"warn": 0.2, "fail": 0.1}})
    with pytest.raises(ValidationError, match="greater than 0"):
        CostConfig.model_validate({"budget_per_month": {"fail": 0}})


def _tighten(config: dict[str, Any]) -> Policy:
    policy = Policy.model_validate(yaml.safe_load(HIGH.read_text()))
    overrides = PolicyOverrides.model_validate({"gates": [{"id": "cost", "config": config}]})
    return effective_policy(policy, overrides, source="models/churn.yaml")


def test_a_manifest_may_lower_budgets_but_not_raise_them() -> None:
    assert _tighten({"budget_per_month": {"warn": 500, "fail": 1000}}).gate("cost") is not None
    with pytest.raises(ConfigError):
        _tighten({"budget_per_month": {"warn": 2000, "fail": 50_000}})
    with pytest.raises(ConfigError):
        _tighten({"require_price": False})

"""The ``cost`` gate as the registry sees it: id, version, config model and ``evaluate``.

It reads the sustainable rate ``load_test`` measured earlier in the run
(``extra["earlier_gates"]["load_test"]["metrics"]["load_test.sustainable_rps"]``), the manifest's ``serving``
section (price, instance type, instances, expected traffic) and the price table (``extra["price_table"]``:
``configs/prices.yaml`` as ``{instance_type: USD per hour}``), and judges the costs
(:mod:`gates.cost.arithmetic`) against the tier's budgets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from clearance.core.digests import sha256_json
from gates.base import CheckResult, GateInputs, GateResult, Status, register_gate
from gates.cost.arithmetic import CostError, Costing, costing
from gates.cost.config import Budget, CostConfig

SUSTAINABLE = "load_test.sustainable_rps"
CHECK_IDS = ("price", "cost_per_1000", "cost_per_month")
MAX_ECHO = 120


def _echo(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "…"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _serving(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    serving = manifest.get("serving")
    return serving if isinstance(serving, Mapping) else {}


def find_price(manifest: Mapping[str, Any], price_table: Any, config: CostConfig) -> tuple[float | None, str]:
    """The price per instance-hour and where it came from (or why there is none).

    Order: the manifest's ``serving.instance_price_per_hour``, the price table's entry for
    ``serving.instance_type``, the tier's ``price_per_hour``.
    """
    serving = _serving(manifest)
    given = _number(serving.get("instance_price_per_hour"))
    if given is not None and given >= 0:
        return given, "the manifest (serving.instance_price_per_hour)"
    kind = serving.get("instance_type")
    table = price_table if isinstance(price_table, Mapping) else {}
    missing = []
    if isinstance(kind, str) and kind:
        listed = _number(table.get(kind))
        if listed is not None and listed >= 0:
            return listed, f"the price table (configs/prices.yaml: {_echo(kind)})"
        missing.append(f"no price for instance type {_echo(kind)} in the price table"
                       if table else f"no price table to look up instance type {_echo(kind)} in")
    else:
        missing.append("the manifest gives no serving.instance_price_per_hour nor serving.instance_type")
    if config.price_per_hour is not None:
        return config.price_per_hour, f"the tier's default (cost.price_per_hour; {missing[0]})"
    return None, missing[0]


def sustainable_rate(extra: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """``load_test``'s sustainable rate, or None and why ("" when no load test ran at all)."""
    earlier = extra.get("earlier_gates")
    entry = earlier.get("load_test") if isinstance(earlier, Mapping) else None
    if entry is None:
        return None, ""
    found = entry.get("metrics") if isinstance(entry, Mapping) else getattr(entry, "metrics", None)
    status = entry.get("status") if isinstance(entry, Mapping) else getattr(entry, "status", None)
    status = getattr(status, "value", status)
    rate = _number(found.get(SUSTAINABLE)) if isinstance(found, Mapping) else None
    if rate is None or rate <= 0:
        return None, (f"nothing measured: load_test ({status}) gave no sustainable rate "
                      f"({SUSTAINABLE}; its SLO fail levels did not hold, or its generator was saturated)")
    return rate, None


def _budget_check(check_id: str, value: float, budget: Budget, text: str) -> CheckResult:
    status = Status.PASS
    if budget.fail is not None and value >= budget.fail:
        status = Status.FAIL
    elif budget.warn is not None and value >= budget.warn:
        status = Status.WARN
    levels = f"warn at ${_usd(budget.warn)}, fail at ${_usd(budget.fail)}"
    return CheckResult(id=check_id, status=status, observed=value, threshold={"warn": budget.warn,
                                                                              "fail": budget.fail},
                       message=f"{text} ({levels})")


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _kpi(manifest: Mapping[str, Any]) -> str | None:
    kpi = manifest.get("kpi")
    metric = kpi.get("metric") if isinstance(kpi, Mapping) else None
    return _echo(metric) if isinstance(metric, str) and metric.strip() else None


@register_gate
class CostGate:
    """What serving the model costs: per 1,000 predictions at the sustainable rate, per month at the expected
    traffic, against the tier's budgets."""

    id: ClassVar[str] = "cost"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = CostConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        assert isinstance(config, CostConfig)
        manifest, extra = inputs.manifest, inputs.extra
        serving = _serving(manifest)
        price, source = find_price(manifest, extra.get("price_table"), config)
        checks: list[CheckResult] = []
        if price is not None:
            checks.append(CheckResult(id="price", status=Status.PASS, observed=price, threshold=None,
                                      message=f"${price:g} per instance-hour, from {source}"))
        else:
            checks.append(CheckResult(id="price", status=Status.FAIL if config.require_price else Status.SKIPPED,
                                      threshold="required" if config.require_price else None,
                                      message=f"no price per instance-hour: {source}"))
        rate, why = sustainable_rate(extra)
        instances_raw = serving.get("instances")
        instances = instances_raw if isinstance(instances_raw, int) and not isinstance(instances_raw, bool) \
            and instances_raw >= 1 else config.instances
        expected = _number(serving.get("expected_traffic_rps"))
        metrics: dict[str, float] = {}
        if price is not None:
            metrics["cost.price_per_hour"] = price
        digests = {"price_table": sha256_json(extra.get("price_table")), "serving": sha256_json(dict(serving))}

        if rate is None:
            if why == "" and extra.get("preflight"):
                skip = ("pre-flight without a load test: nothing measured (run with --endpoint so load_test "
                        "measures the sustainable rate)")
                checks += [CheckResult(id=c, status=Status.SKIPPED, message=skip) for c in CHECK_IDS[1:]]
            else:
                reason = why or "nothing measured: load_test did not run before cost in this promotion"
                checks += [CheckResult(id=c, status=Status.ERROR, message=reason) for c in CHECK_IDS[1:]]
            return self._result(checks, metrics, digests, manifest)
        metrics["load_test.sustainable_rps"] = rate
        if price is None:
            checks += [CheckResult(id=c, status=Status.SKIPPED, message="no price: the cost cannot be computed")
                       for c in CHECK_IDS[1:]]
            return self._result(checks, metrics, digests, manifest)
        try:
            result = costing(price, instances, rate, expected if expected is not None and expected > 0 else None)
        except CostError as exc:
            checks += [CheckResult(id=c, status=Status.ERROR, message=f"the cost cannot be computed: {exc}")
                       for c in CHECK_IDS[1:]]
            return self._result(checks, metrics, digests, manifest)
        checks += self._judge(result, config, expected)
        metrics["cost.per_1000"] = result.per_1000
        metrics["cost.instances"] = float(result.instances)
        if result.needed is not None and result.per_month is not None:
            metrics["cost.instances_needed"] = float(result.needed)
            metrics["cost.per_month"] = result.per_month
        return self._result(checks, metrics, digests, manifest)

    def _judge(self, c: Costing, config: CostConfig, expected: float | None) -> list[CheckResult]:
        checks = [_budget_check(
            "cost_per_1000", c.per_1000, config.budget_per_1000,
            f"${_usd(c.per_1000)} per 1,000 predictions: {c.instances} instance(s) at ${c.price_per_hour:g}/h "
            f"(${c.hourly:g}/h) sustaining {c.sustainable_rps:g} req/s")]
        if c.needed is not None and c.per_month is not None:
            checks.append(_budget_check(
                "cost_per_month", c.per_month, config.budget_per_month,
                f"${_usd(c.per_month)} per month: {c.needed:,} instance(s) for {c.expected_rps:g} req/s expected "
                f"({c.per_instance_rps:g} req/s per instance) × ${c.price_per_hour:g}/h × 730 h"))
        else:
            what = ("the manifest gives no serving.expected_traffic_rps" if expected is None
                    else f"serving.expected_traffic_rps is not a positive rate ({expected:g})")
            checks.append(CheckResult(id="cost_per_month",
                                      status=Status.FAIL if config.require_traffic else Status.SKIPPED,
                                      threshold="required" if config.require_traffic else None,
                                      message=f"no monthly cost: {what}"))
        return checks

    def _result(self, checks: list[CheckResult], metrics: dict[str, float], digests: dict[str, str],
                manifest: Mapping[str, Any]) -> GateResult:
        return GateResult.from_checks(self.id, self.version, checks, metrics=metrics, input_digests=digests,
                                      message=_message(metrics, checks, _kpi(manifest)))


def _message(m: dict[str, float], checks: list[CheckResult], kpi: str | None) -> str:
    """One line: the costs (next to the KPI's name when the manifest has one), or why there are none."""
    if "cost.per_1000" in m:
        text = f"${_usd(m['cost.per_1000'])} per 1,000 predictions"
        if "cost.per_month" in m:
            text += f", ${_usd(m['cost.per_month'])} per month ({int(m['cost.instances_needed']):,} instance(s))"
        else:
            text += ", no monthly cost"
    else:
        first = next((c for c in checks if c.status in (Status.ERROR, Status.FAIL)), None) \
            or next((c for c in checks if c.id != "price"), checks[0])
        text = first.message
    return f"KPI {kpi}: {text}" if kpi else text

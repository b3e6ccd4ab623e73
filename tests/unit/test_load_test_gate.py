"""The ``load_test`` gate on crafted load runs: SLO levels, a saturated generator, a refused target, errors by
class, the knee of a ramp, metrics, evidence and config bounds / tightening. Plain data: no load is generated."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from clearance.config import ConfigError, PolicyOverrides, effective_policy
from clearance.config.schema import Policy
from gates.base import GateInputs, GateResult, Status, parse_gate_config, run_gate
from gates.load_test.config import LoadTestConfig
from gates.load_test.evidence import RUN_NAME
from gates.load_test.gate import CHECK_IDS

REPO = Path(__file__).resolve().parents[2]
HIGH = REPO / "configs" / "policies" / "high.yaml"

# The high tier's SLO (configs/policies/high.yaml), restated so a test reads on its own.
CONFIG: dict[str, Any] = {
    "rate": 50, "duration": "20s",
    "slo": {"p50_ms": {"warn": 100, "fail": 200}, "p95_ms": {"warn": 250, "fail": 500},
            "p99_ms": {"warn": 500, "fail": 1000}, "max_ms": None,
            "error_rate": {"warn": 0.001, "fail": 0.01}, "min_achieved_ratio": {"warn": 0.98, "fail": 0.9}},
    "generator": {"max_cpu": 0.9, "max_lateness_p99_ms": 10},
}
PNG_SHA = "ab" * 32


def step(offered: float = 50, *, sent: int = 1000, errors: dict[str, int] | None = None, p50: float = 3.1,
         p95: float = 6.0, p99: float = 9.0, mx: float = 20.0, achieved: float | None = None,
         cpu: tuple[float, ...] = (0.21, 0.19), late_p99: float = 0.8) -> dict[str, Any]:
    errs = {"timeout": 0, "4xx": 0, "5xx": 0, "connection": 0, **(errors or {})}
    return {"offered_rps": offered, "duration_s": 20.0, "sent": sent, "ok": sent - sum(errs.values()),
            "achieved_rps": offered * 0.998 if achieved is None else achieved, "errors": errs,
            "latency_ms": {"p50": p50, "p90": p95 * 0.9, "p95": p95, "p99": p99, "max": mx, "mean": p50 * 1.1},
            "hdr": "HISTFAAAA", "generator": {"processes": len(cpu), "cpu": list(cpu),
                                              "lateness_ms": {"p50": 0.1, "p99": late_p99, "max": 4}},
            "timeline": [{"t": 1, "sent": 50, "p50_ms": 3, "p99_ms": 9, "errors": 0}]}


def load_run(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"target": "http://127.0.0.1:8081/predict", "refused": None, "error": None,
            "steps": list(steps) or [step()],
            "evidence": [{"name": "load_test_latency_over_time.png", "sha256": PNG_SHA,
                          "path": "/tmp/ev/load_test_latency_over_time.png"},
                         {"name": "load_test_latency_distribution.png", "sha256": "cd" * 32,
                          "path": "/tmp/ev/load_test_latency_distribution.png"},
                         {"name": "load_test_timeline.jsonl", "sha256": "ef" * 32,
                          "path": "/tmp/ev/load_test_timeline.jsonl"}], **fields}


def run(tmp_path: Path, load: dict[str, Any] | None, config: dict[str, Any] | None = None,
        **extra: Any) -> GateResult:
    inputs = GateInputs(model="churn", version="1.0.0", manifest={},
                        extra={"evidence_dir": str(tmp_path), **({"load_run": load} if load is not None else {}),
                               **extra})
    return run_gate("load_test", inputs, config if config is not None else CONFIG)


def by_id(result: GateResult) -> dict[str, Any]:
    return {c.id: c for c in result.checks}


# --------------------------------------------------------------------------- the SLO decides


def test_a_healthy_run_passes_with_its_metrics(tmp_path: Path) -> None:
    result = run(tmp_path, load_run())
    checks = by_id(result)
    assert result.status is Status.PASS, [c.message for c in result.problems()]
    assert list(checks) == list(CHECK_IDS)
    assert checks["knee"].status is Status.SKIPPED  # one step: no ramp
    assert result.metrics["load_test.p99_ms"] == 9.0 and result.metrics["load_test.p50_ms"] == 3.1
    assert result.metrics["load_test.offered_rps"] == 50 and result.metrics["load_test.error_rate"] == 0
    assert result.metrics["load_test.sustainable_rps"] == pytest.approx(49.9)
    assert "sustainable 49.9 req/s" in result.message


@pytest.mark.parametrize(("changes", "check_id", "status"), [
    ({"p50": 99.9}, "latency:p50", Status.PASS),
    ({"p50": 100}, "latency:p50", Status.WARN),           # a level is reached at >=
    ({"p50": 150, "p95": 160, "p99": 170}, "latency:p50", Status.WARN),
    ({"p50": 200, "p95": 210, "p99": 220}, "latency:p50", Status.FAIL),
    ({"p95": 249}, "latency:p95", Status.PASS),
    ({"p95": 300, "p99": 310}, "latency:p95", Status.WARN),
    ({"p95": 500, "p99": 510}, "latency:p95", Status.FAIL),
    ({"p99": 499.99}, "latency:p99", Status.PASS),
    ({"p99": 500}, "latency:p99", Status.WARN),
    ({"p99": 999}, "latency:p99", Status.WARN),
    ({"p99": 1000}, "latency:p99", Status.FAIL),
    ({"p99": 2000, "mx": 2500}, "latency:p99", Status.FAIL),
    ({"mx": 60_000}, "latency:max", Status.PASS),          # max_ms: null → reported, not judged
    ({"errors": {"5xx": 0}}, "errors", Status.PASS),
    ({"errors": {"5xx": 1}}, "errors", Status.WARN),       # 1 of 1000 = 0.001: the warn level
    ({"errors": {"timeout": 9}}, "errors", Status.WARN),
    ({"errors": {"timeout": 5, "connection": 5}}, "errors", Status.FAIL),  # 0.01 together
    ({"achieved": 49.0}, "throughput", Status.PASS),       # 0.98 meets the minimum
    ({"achieved": 48.9}, "throughput", Status.WARN),
    ({"achieved": 45.0}, "throughput", Status.WARN),       # 0.9 meets the fail minimum, not the warn one
    ({"achieved": 44.9}, "throughput", Status.FAIL),
])
def test_slo_levels_decide(tmp_path: Path, changes: dict[str, Any], check_id: str, status: Status) -> None:
    result = run(tmp_path, load_run(step(**changes)))
    check = by_id(result)[check_id]
    assert check.status is status, check.message
    assert result.status is max((c.status for c in result.checks if c.status is not Status.SKIPPED),
                                key=[Status.PASS, Status.WARN, Status.FAIL, Status.ERROR].index)


@pytest.mark.parametrize(("changes", "sustainable"), [
    ({"p99": 999}, True), ({"p99": 1000}, False), ({"errors": {"5xx": 9}}, True), ({"errors": {"5xx": 10}}, False),
    ({"achieved": 45.0}, True), ({"achieved": 44.9}, False), ({"p50": 250, "p95": 260, "p99": 270}, False),
])
def test_the_sustainable_rate_needs_every_fail_level(tmp_path: Path, changes: dict[str, Any],
                                                      sustainable: bool) -> None:
    result = run(tmp_path, load_run(step(**changes)))
    assert ("load_test.sustainable_rps" in result.metrics) is sustainable
    if not sustainable:
        assert "no sustainable rate" in result.message


def test_errors_by_class_are_observed(tmp_path: Path) -> None:
    result = run(tmp_path, load_run(step(sent=2000, errors={"timeout": 3, "4xx": 2, "5xx": 7, "connection": 1})))
    errors = by_id(result)["errors"]
    assert errors.status is Status.WARN
    assert errors.observed == {"rate": 13 / 2000, "sent": 2000, "ok": 1987, "timeout": 3, "4xx": 2, "5xx": 7,
                               "connection": 1}
    assert "timeout 3, 4xx 2, 5xx 7, connection 1" in errors.message
    assert errors.threshold == {"warn": 0.001, "fail": 0.01}
    assert result.metrics["load_test.error_rate"] == 13 / 2000


def test_no_successful_response_skips_latency_and_fails_errors(tmp_path: Path) -> None:
    bad = step(sent=100, errors={"5xx": 100})
    bad["latency_ms"] = {"p50": None, "p90": None, "p95": None, "p99": None, "max": None, "mean": None}
    result = run(tmp_path, load_run(bad))
    checks = by_id(result)
    assert checks["errors"].status is Status.FAIL and result.status is Status.FAIL
    assert all(checks[f"latency:{p}"].status is Status.SKIPPED for p in ("p50", "p95", "p99", "max"))
    assert "load_test.sustainable_rps" not in result.metrics and "load_test.p99_ms" not in result.metrics


# --------------------------------------------------------------------------- the generator


@pytest.mark.parametrize("saturating", [{"cpu": (0.95, 0.2)}, {"late_p99": 25.0}])
def test_a_saturated_generator_is_an_error_never_a_server_result(tmp_path: Path,
                                                                 saturating: dict[str, Any]) -> None:
    # the latency would fail the SLO: a saturated generator must not pass nor fail the server
    result = run(tmp_path, load_run(step(p50=900, p95=1500, p99=3000, achieved=30, **saturating)))
    checks = by_id(result)
    assert result.status is Status.ERROR
    assert checks["generator"].status is Status.ERROR
    assert "the generator, not the server, was the bottleneck" in checks["generator"].message
    for check_id in ("latency:p50", "latency:p95", "latency:p99", "latency:max", "errors", "throughput"):
        assert checks[check_id].status is Status.SKIPPED, check_id
        assert "not a server result" in checks[check_id].message
    assert "load_test.sustainable_rps" not in result.metrics
    assert not any(c.status is Status.FAIL for c in result.checks)


def test_a_generator_at_its_limit_is_not_saturated(tmp_path: Path) -> None:
    result = run(tmp_path, load_run(step(cpu=(0.9, 0.9), late_p99=10)))
    assert by_id(result)["generator"].status is Status.PASS and result.status is Status.PASS


def test_the_runs_discarded_before_the_judged_one_are_named(tmp_path: Path) -> None:
    why = "run 1: at 50 req/s sends left 1358.85 ms late at p99 (limit 10 ms)"
    kept = by_id(run(tmp_path, load_run(step(), discarded=[why])))["generator"]
    assert kept.status is Status.PASS
    assert kept.message.endswith(f"(judged on the last of 2 runs; discarded, their generator the bottleneck: {why})")
    assert kept.observed["discarded_runs"] == [why] and kept.observed["steps"][0]["saturated"] is False
    still = by_id(run(tmp_path, load_run(step(late_p99=25.0), discarded=[why, why.replace("run 1", "run 2")])))
    assert still["generator"].status is Status.ERROR and "judged on the last of 3 runs" in still["generator"].message
    assert by_id(run(tmp_path, load_run(step())))["generator"].observed["discarded_runs"] == []


def test_a_run_that_does_not_report_its_generator_is_an_error(tmp_path: Path) -> None:
    silent = step()
    silent["generator"] = None
    result = run(tmp_path, load_run(silent))
    assert by_id(result)["generator"].status is Status.ERROR
    assert "cannot be told" in by_id(result)["generator"].message


# --------------------------------------------------------------------------- the target


def test_a_refused_target_fails_naming_the_host(tmp_path: Path) -> None:
    refused = load_run(target="https://api.someone-else.com:8443/predict", steps=[], evidence=[],
                       refused="host api.someone-else.com:8443 is not on CLEARANCE_LOAD_TEST_ALLOWED_HOSTS "
                               "(allowed: 127.0.0.1, localhost)")
    result = run(tmp_path, refused)
    target = by_id(result)["target"]
    assert result.status is Status.FAIL and target.status is Status.FAIL
    assert "api.someone-else.com:8443" in target.message and "127.0.0.1, localhost" in target.message
    assert all(c.status is Status.SKIPPED for c in result.checks if c.id != "target")
    assert [e.name for e in result.evidence] == [RUN_NAME] and result.metrics == {}


def test_a_failed_run_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, load_run(steps=[], error="the endpoint did not answer the first request"))
    assert result.status is Status.ERROR and by_id(result)["target"].status is Status.ERROR
    assert "did not answer" in by_id(result)["target"].message


def test_no_load_run_is_an_error_in_a_flow_and_skipped_in_a_preflight(tmp_path: Path) -> None:
    result = run(tmp_path, None)
    assert result.status is Status.ERROR and by_id(result)["target"].message == "the flow gave no load run"
    preflight = run(tmp_path, None, preflight=True)
    assert preflight.status is Status.SKIPPED and "--endpoint" in by_id(preflight)["target"].message
    assert list(by_id(preflight)) == list(CHECK_IDS)


def test_an_unreadable_load_run_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, {"target": "x", "steps": [{"sent": "many"}]})
    assert result.status is Status.ERROR and "could not be read" in by_id(result)["target"].message


# --------------------------------------------------------------------------- the ramp


def ramp_run() -> dict[str, Any]:
    return load_run(step(50, p99=9), step(100, p99=40), step(200, p99=800, errors={"5xx": 5}),
                    step(400, p99=1500), step(800, p99=4000, achieved=500, errors={"timeout": 300}))


def test_the_knee_of_a_ramp_is_the_sustainable_rate(tmp_path: Path) -> None:
    config = {**CONFIG, "ramp": [50, 100, 200, 400, 800], "duration": "5s", "warmup": "1s"}
    result = run(tmp_path, ramp_run(), config)
    knee = by_id(result)["knee"]
    assert knee.status is Status.PASS and knee.observed["knee_rps"] == 200
    assert [row["meets"] for row in knee.observed["steps"]] == [True, True, True, False, False]
    assert result.metrics["load_test.sustainable_rps"] == 200
    # the SLO checks judge the step at `rate` (50 req/s), whatever the higher steps did
    assert by_id(result)["latency:p99"].observed == 9 and result.metrics["load_test.offered_rps"] == 50
    assert result.status is Status.PASS


def test_the_slo_judges_the_first_step_when_rate_is_not_in_the_ramp(tmp_path: Path) -> None:
    config = {**CONFIG, "rate": 75, "ramp": [50, 100, 200, 400, 800], "duration": "5s", "warmup": "1s"}
    result = run(tmp_path, ramp_run(), config)
    assert result.metrics["load_test.offered_rps"] == 50


def test_a_ramp_where_no_step_holds_has_no_sustainable_rate(tmp_path: Path) -> None:
    config = {**CONFIG, "ramp": [50, 100], "duration": "5s", "warmup": "1s"}
    result = run(tmp_path, load_run(step(50, p99=1200), step(100, p99=1800)), config)
    assert by_id(result)["knee"].status is Status.FAIL and "load_test.sustainable_rps" not in result.metrics


def test_a_saturated_step_is_never_the_knee(tmp_path: Path) -> None:
    config = {**CONFIG, "ramp": [50, 100], "duration": "5s", "warmup": "1s"}
    result = run(tmp_path, load_run(step(50), step(100, cpu=(0.99,))), config)
    assert by_id(result)["knee"].observed["knee_rps"] == 50
    assert by_id(result)["generator"].status is Status.ERROR and "at 100 req/s" in by_id(result)["generator"].message
    assert by_id(result)["latency:p99"].status is Status.PASS  # the judged step (50) kept up


# --------------------------------------------------------------------------- evidence


def test_evidence_names_the_generator_files_and_writes_the_run(tmp_path: Path) -> None:
    load = load_run()
    result = run(tmp_path, load)
    files = {e.name: e for e in result.evidence}
    assert list(files) == ["load_test_latency_over_time.png", "load_test_latency_distribution.png",
                           "load_test_timeline.jsonl", RUN_NAME]
    png = files["load_test_latency_over_time.png"]
    assert png.sha256 == PNG_SHA and png.media_type == "image/png"
    assert png.uri == "file:///tmp/ev/load_test_latency_over_time.png"
    assert files["load_test_timeline.jsonl"].media_type == "application/x-ndjson"
    body = (tmp_path / RUN_NAME).read_bytes()
    assert files[RUN_NAME].sha256 == hashlib.sha256(body).hexdigest()
    assert json.loads(body) == load
    assert result.input_digests["load_run"] == files[RUN_NAME].sha256


def test_a_load_run_model_is_accepted_as_well_as_its_json(tmp_path: Path) -> None:
    from gates.load_test.judge import LoadRun

    model = LoadRun.model_validate(load_run())
    assert run(tmp_path, model).status is Status.PASS  # type: ignore[arg-type]


# --------------------------------------------------------------------------- config


def test_the_config_defaults_are_the_designed_slo() -> None:
    config = LoadTestConfig()
    assert config.slo.p99_ms.fail == 1000 and config.slo.error_rate.warn == 0.001
    assert config.slo.max_ms.warn is None and config.duration.total_seconds() == 20
    assert config.rates() == [50]


@pytest.mark.parametrize(("changes", "needle"), [
    ({"duration": "11m"}, "at most 10m"),
    ({"rate": 100_001}, "less than or equal"),
    ({"max_requests": 10_000_001}, "less than or equal"),
    ({"ramp": [100, 50]}, "strictly increasing"),
    ({"ramp": [50, 200_000]}, "at most 100,000"),
    ({"rate": 20_000, "duration": "1m"}, "more than max_requests"),
    ({"slo": {"p99_ms": {"warn": 900, "fail": 800}}}, "must not be above fail"),
    ({"slo": {"min_achieved_ratio": {"warn": 0.8, "fail": 0.9}}}, "must not be below fail"),
    ({"slo": {"error_rate": {"fail": 0}}}, "greater than 0"),
    ({"timeout": "0s"}, "positive"),
    ({"rps": 5}, "Extra inputs"),
])
def test_config_bounds(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        LoadTestConfig.model_validate({**CONFIG, **changes})
    assert needle in str(info.value)


def _high() -> Policy:
    return Policy.model_validate(yaml.safe_load(HIGH.read_text()))


def _tighten(config: dict[str, Any]) -> Policy:
    overrides = PolicyOverrides.model_validate({"gates": [{"id": "load_test", "config": config}]})
    return effective_policy(_high(), overrides, source="models/churn.yaml")


def test_a_manifest_may_tighten_the_slo() -> None:
    policy = _tighten({"slo": {**CONFIG["slo"], "p99_ms": {"warn": 200, "fail": 400},
                               "max_ms": {"fail": 2000}}, "rate": 80, "timeout": "1s"})
    spec = policy.gate("load_test")
    assert spec is not None
    config = parse_gate_config("load_test", spec.config)
    assert isinstance(config, LoadTestConfig) and config.slo.p99_ms.fail == 400 and config.slo.max_ms.fail == 2000


@pytest.mark.parametrize("looser", [
    {"slo": {**CONFIG["slo"], "p99_ms": {"warn": 500, "fail": 3000}}},
    {"slo": {**CONFIG["slo"], "min_achieved_ratio": {"warn": 0.98, "fail": 0.5}}},
    {"rate": 10},
    {"timeout": "10s"},
    {"generator": {"max_cpu": 1.0, "max_lateness_p99_ms": 10}},
    {"max_requests": 400_000},                      # shapes the run: no tighten rule
    {"generator": {"max_cpu": 0.9, "max_lateness_p99_ms": 10, "attempts": 1}},  # shapes the run too
])
def test_a_manifest_may_not_loosen_it(looser: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _tighten(copy.deepcopy(looser))

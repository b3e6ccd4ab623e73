"""``clearance gate run load_test | cost --endpoint URL``: the pre-flight loads a real endpoint (``clearance
serve-model`` on a tiny model, in a subprocess on a free port), only when its host is allowlisted, and judges
it; ``cost`` runs the load test first and prices its metrics. Also the plain functions of tasks/load_test.py:
targets, secret headers, request bodies."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.config.schema import ModelManifest
from clearance.dev import model_server
from gates.base import GateResult, Status
from tasks.load_test import LoadSetupError, load_target, request_bodies, run_load_test

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
FEATURES = ("tenure", "spend", "calls")
#: 0.5 s of warm-up, then 1 s at 20 requests/s. The generator shares this machine with the server and whatever
#: else the test run does, so sends may leave late: what is judged here is the CLI, not the generator's self-check
#: (tests/unit/test_load_generator.py), hence 100 ms of lateness tolerated (the shipped tiers: 10 ms). For the same
#: reason the timeout and the latency levels are seconds, not the tiers' milliseconds: a unit session starved
#: beside the server halves has seen a local answer take 5.7 s, and latency judging is tested on fixed numbers in
#: tests/unit/test_load_test_gate.py. Errors are still judged at the default levels.
SECONDS = {"warn": 20_000, "fail": 30_000}
SHORT = {"rate": 20, "duration": "1s", "warmup": "0.5s", "timeout": "30s", "max_requests": 1000, "connections": 4,
         "slo": {"p50_ms": SECONDS, "p95_ms": SECONDS, "p99_ms": SECONDS},
         "generator": {"max_cpu": 1.0, "max_lateness_p99_ms": 100}}
COST = {"budget_per_1000": {"warn": 0.05, "fail": 0.10}, "budget_per_month": {"warn": 2000, "fail": 5000}}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A logistic regression on three numeric columns and 300 eval rows (the three columns and a label)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("load-model")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, len(FEATURES)))
    y = (x[:, 0] - x[:, 2] > 0).astype(np.int64)
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit(x, y), buffer)
    (folder / "model.joblib").write_bytes(buffer.getvalue())
    pq.write_table(pa.table({**{n: x[:, i] for i, n in enumerate(FEATURES)}, "label": y}), folder / "eval.parquet")
    return {"model": folder / "model.joblib", "eval": folder / "eval.parquet", "folder": folder}


def serve(model_file: Path, *extra: str) -> model_server.ServedModel:
    # the timeout guards against a hang only: at this session's low priority a server's start-up may take a minute
    return model_server.start(model_file, *extra, log=model_file.parent / "serve.log", timeout=600)


@pytest.fixture(scope="module")
def endpoint(model_files) -> Iterator[str]:
    server = serve(model_files["model"])
    yield server.predict_url
    server.stop()


@pytest.fixture(scope="module")
def failing_endpoint(model_files) -> Iterator[str]:
    """Half of the requests answered 503."""
    server = serve(model_files["model"], "--error-rate", "0.5")
    yield server.predict_url
    server.stop()


@pytest.fixture
def allowed(monkeypatch) -> Iterator[None]:
    from clearance.settings import get_settings

    monkeypatch.setenv("CLEARANCE_LOAD_TEST_ALLOWED_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def refused(monkeypatch) -> Iterator[None]:
    from clearance.settings import get_settings

    monkeypatch.delenv("CLEARANCE_LOAD_TEST_ALLOWED_HOSTS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def manifest_doc(eval_path: Path, **serving: Any) -> dict[str, Any]:
    return {"name": "tiny", "owner": "dana", "risk_tier": "high", "serving_endpoint": "http://127.0.0.1:1/predict",
            "serving": {"body": {"columns": list(FEATURES), "sample": 100}, **serving},
            "versions": {"1.0.0": {"artifacts": [{"key": "candidates/tiny/1.0.0/model.joblib", "sha256": "a" * 64}],
                                   "datasets": [{"role": "eval", "uri": str(eval_path)}]}}}


# --------------------------------------------------------------------------- the CLI


def test_load_test_on_an_allowlisted_endpoint_passes(endpoint, model_files, tmp_path, allowed):
    config = write_yaml(tmp_path / "load.yaml", SHORT)
    manifest = write_yaml(tmp_path / "tiny.yaml", manifest_doc(tmp_path / "elsewhere.parquet"))
    kept = tmp_path / "evidence"
    result = runner.invoke(app, ["gate", "run", "load_test", "--endpoint", endpoint, "--manifest", str(manifest),
                                 "--dataset", f"eval={model_files['eval']}", "--config", str(config),
                                 "--evidence-dir", str(kept), "--json"])
    assert result.exit_code == 0, result.output
    gate = GateResult.model_validate_json(result.stdout)
    assert gate.status is Status.PASS, [(c.id, c.status, c.message) for c in gate.checks]
    assert gate.metrics["load_test.offered_rps"] == 20
    assert 18 <= gate.metrics["load_test.sustainable_rps"] <= 21
    assert gate.metrics["load_test.error_rate"] == 0
    assert (kept / "load_test_latency_over_time.png").is_file()


def test_a_run_whose_generator_was_the_bottleneck_is_offered_again_and_named(endpoint, model_files, tmp_path,
                                                                              allowed):
    # limits no generator can keep: every run is saturated, so all three are made and the last is judged
    config = write_yaml(tmp_path / "load.yaml", {**SHORT, "duration": "0.5s", "warmup": "0s", "generator": {
        "max_cpu": 1e-9, "max_lateness_p99_ms": 1e-9, "attempts": 3}})
    health = endpoint.replace("/predict", "/health")
    served_before = httpx.get(health, timeout=30).json()["requests"]
    result = runner.invoke(app, ["gate", "run", "load_test", "--endpoint", endpoint, "--dataset",
                                 f"eval={model_files['eval']}", "--config", str(config), "--json"])
    gate = GateResult.model_validate_json(result.stdout)
    generator = next(c for c in gate.checks if c.id == "generator")
    assert generator.status is Status.ERROR and "judged on the last of 3 runs" in generator.message, generator
    discarded = generator.observed["discarded_runs"]
    assert [d.split(":")[0] for d in discarded] == ["run 1", "run 2"] and "at 20 req/s" in discarded[0]
    served = httpx.get(health, timeout=30).json()["requests"] - served_before
    assert served >= 3 * 10 * 0.9, served  # three runs of 20 req/s × 0.5 s reached the server


def test_a_host_not_allowlisted_is_refused_and_the_error_says_how_to_allow_it(endpoint, model_files, tmp_path,
                                                                               refused):
    config = write_yaml(tmp_path / "load.yaml", SHORT)
    result = runner.invoke(app, ["gate", "run", "load_test", "--endpoint", endpoint, "--dataset",
                                 f"eval={model_files['eval']}", "--config", str(config)])
    assert result.exit_code == 1, result.output
    port = endpoint.split(":")[2].split("/")[0]
    assert f"CLEARANCE_LOAD_TEST_ALLOWED_HOSTS='127.0.0.1:{port}'" in result.stderr
    assert "Traceback" not in result.output


def test_errors_over_the_tier_level_fail_the_gate(failing_endpoint, model_files, tmp_path, allowed):
    config = write_yaml(tmp_path / "load.yaml", SHORT)
    manifest = write_yaml(tmp_path / "tiny.yaml", manifest_doc(model_files["eval"]))
    result = runner.invoke(app, ["gate", "run", "load_test", "--endpoint", failing_endpoint, "--manifest",
                                 str(manifest), "--config", str(config), "--json"])
    assert result.exit_code == 1, result.output
    gate = GateResult.model_validate_json(result.stdout)
    assert {c.id: c.status for c in gate.checks}["errors"] is Status.FAIL
    assert gate.metrics["load_test.error_rate"] == pytest.approx(0.5, abs=0.05)
    assert "load_test.sustainable_rps" not in gate.metrics  # the SLO did not hold: nothing sustainable to price


def test_cost_runs_the_load_test_first_and_prices_what_it_sustained(endpoint, model_files, tmp_path, allowed):
    manifest = write_yaml(tmp_path / "tiny.yaml", manifest_doc(model_files["eval"], expected_traffic_rps=30,
                                                              instance_price_per_hour=0.2, instances=1))
    policy = write_yaml(tmp_path / "high.yaml", {
        "tier": "high", "gates": [{"id": "load_test", "mode": "blocking", "config": SHORT},
                                  {"id": "cost", "mode": "blocking", "config": COST}]})
    result = runner.invoke(app, ["gate", "run", "cost", "--endpoint", endpoint, "--manifest", str(manifest),
                                 "--policy", str(policy), "--json"])
    assert result.exit_code == 0, result.output
    # pass, or warn when the machine is busy (the generator's lateness; make test runs this beside the
    # server-backed sessions on 2 cores): either way its sustained rate is what is priced
    assert re.search(r"load_test ran first: (pass|warn) — 20 req/s offered", result.stderr), result.stderr
    gate = GateResult.model_validate_json(result.stdout)
    assert gate.gate_id == "cost" and gate.status is Status.PASS, gate.checks
    sustainable = 0.2 / (gate.metrics["cost.per_1000"] / 1000 * 3600)  # per_1000 = price / (rps × 3600) × 1000
    assert 18 <= sustainable <= 21
    assert gate.metrics["cost.instances_needed"] == 2  # 30 requests/s at about 20 per instance
    assert gate.metrics["cost.per_month"] == pytest.approx(2 * 0.2 * 730)


def test_cost_without_an_endpoint_has_nothing_to_price(model_files, tmp_path):
    doc = manifest_doc(model_files["eval"], expected_traffic_rps=30, instance_price_per_hour=0.2)
    del doc["serving_endpoint"]
    manifest = write_yaml(tmp_path / "tiny.yaml", doc)
    result = runner.invoke(app, ["gate", "run", "cost", "--manifest", str(manifest), "--json"])
    assert "nothing was load-tested" in result.stderr
    assert result.exit_code == 0, result.output
    gate = GateResult.model_validate_json(result.stdout)
    checks = {c.id: c.status for c in gate.checks}
    assert checks["price"] is Status.PASS  # the price is found; what it would cost is not known
    assert checks["cost_per_1000"] is Status.SKIPPED and "cost.per_1000" not in gate.metrics


@pytest.mark.parametrize("argv, message", [
    (["gate", "run", "data_check", "--endpoint", "http://127.0.0.1:1/predict"],
     "--endpoint http://127.0.0.1:1/predict: only load_test and cost load an endpoint, not data_check"),
    (["gate", "run", "load_test"], "nothing to load: give --endpoint URL"),
])
def test_bad_input_is_one_line(argv, message):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
    assert "Traceback" not in result.output


def test_a_config_over_the_bounds_is_a_file_line_error(tmp_path):
    config = write_yaml(tmp_path / "load.yaml", {"rate": 20, "duration": "11m"})
    result = runner.invoke(app, ["gate", "run", "load_test", "--endpoint", "http://127.0.0.1:1/p", "--config",
                                 str(config)])
    assert result.exit_code == 2, result.output
    assert "load.yaml:2: duration" in result.stderr


# --------------------------------------------------------------------------- tasks/load_test.py


def test_request_bodies_are_deterministic_rows_of_the_eval_data_without_the_label(model_files):
    from tasks.datasets import locate_dataset

    manifest = ModelManifest.model_validate(manifest_doc(model_files["eval"]))
    locators = {"eval": locate_dataset(manifest.versions["1.0.0"].datasets[0], compute_digest=False)}
    bodies = request_bodies(manifest, "1.0.0", locators)
    assert len(bodies) == 100 and bodies == request_bodies(manifest, "1.0.0", locators)
    first = json.loads(bodies[0])
    assert list(first) == ["instances"] and len(first["instances"]) == 1 and len(first["instances"][0]) == 3
    # no columns named: every column but the contract's label and key; records, 4 rows per request
    doc = manifest_doc(model_files["eval"])
    doc["serving"]["body"] = {"format": "records", "rows_per_request": 4, "sample": 10}
    doc["versions"]["1.0.0"]["datasets"][0]["contract"] = {"label": {"column": "label", "values": [0, 1]},
                                                           "key": ["calls"]}
    records = request_bodies(ModelManifest.model_validate(doc), "1.0.0", locators)
    assert len(records) == 3  # ceil(10 / 4): the last request wraps around to the first rows
    rows = json.loads(records[0])["records"]
    assert len(rows) == 4 and list(rows[0]) == ["tenure", "spend"]


def test_request_bodies_name_what_is_missing(model_files):
    doc = manifest_doc(model_files["eval"])
    doc["serving"]["body"] = {"columns": ["tenure", "age"]}
    from tasks.datasets import locate_dataset

    manifest = ModelManifest.model_validate(doc)
    locators = {"eval": locate_dataset(manifest.versions["1.0.0"].datasets[0], compute_digest=False)}
    with pytest.raises(LoadSetupError, match="has no column age"):
        request_bodies(manifest, "1.0.0", locators)
    doc["serving"]["body"] = {"dataset_role": "train"}
    with pytest.raises(LoadSetupError, match="version 1.0.0 has no train dataset"):
        request_bodies(ModelManifest.model_validate(doc), "1.0.0", locators)


def test_secret_headers_come_from_their_blocks_and_a_missing_block_is_named_never_a_value(model_files, tmp_path):
    doc = manifest_doc(model_files["eval"], secret_headers={"Authorization": "churn-api-token"},
                       headers={"X-Team": "ml"})
    manifest = ModelManifest.model_validate(doc)
    blocks = {"churn-api-token": "Bearer s3cr3t-value"}

    def secrets(name: str) -> str:
        if name not in blocks:
            raise LoadSetupError(f"no Prefect Secret block named {name!r}")
        return blocks[name]

    target = load_target(manifest, secrets=secrets)
    assert target.headers == {"X-Team": "ml", "Authorization": "Bearer s3cr3t-value"}
    assert "s3cr3t" not in repr(target)
    blocks.clear()
    run = run_load_test(manifest, "1.0.0", {}, SHORT, tmp_path, secrets=secrets)
    assert run["error"] == "serving.secret_headers.Authorization: no Prefect Secret block named 'churn-api-token'"
    assert run["steps"] == [] and run["target"] == "http://127.0.0.1:1/predict"


def test_a_sagemaker_endpoint_wins_over_the_url_unless_the_preflight_names_one(model_files):
    doc = manifest_doc(model_files["eval"], sagemaker={"endpoint_name": "churn-prod", "region": "eu-west-1"})
    manifest = ModelManifest.model_validate(doc)
    target = load_target(manifest)
    assert (target.kind, target.endpoint_name, target.region) == ("sagemaker", "churn-prod", "eu-west-1")
    assert load_target(manifest, endpoint="http://127.0.0.1:9/p").url == "http://127.0.0.1:9/p"

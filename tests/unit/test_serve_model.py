"""``clearance serve-model``: the scanned model served over HTTP with injected latency and errors.

Predictions equal the model's own; injected error counts are exact for a seed; an injected latency is observed
without blocking other requests; a malicious file is refused without ever being unpickled; bad bodies get a 4xx
naming the problem; boto3's ``sagemaker-runtime`` client gets the predictions from a real uvicorn process.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from clearance.app import serve_model as sm
from clearance.app.cli import app
from clearance.app.serve_model import (
    MAX_BODY,
    ErrorSchedule,
    Latency,
    ModelServer,
    Refused,
    build_app,
    load_model,
    parse_latency,
    scan_config,
)
from clearance.dev import model_server
from gates.security_scan.config import Action
from tests.unit.security_corpus import global_reduce

REPO = Path(__file__).resolve().parents[2]
HIGH = REPO / "configs" / "policies" / "high.yaml"
runner = CliRunner()


class Evil:
    """Pickles to ``os.system("touch <marker>")``: never unpickle it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


class Strange:
    """A class of this test module: on no allowlist."""


def _fit(x: Any, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 4))
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(_fit(x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)), path)
    return path


@pytest.fixture(scope="module")
def named_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model fitted on a DataFrame: it knows its feature names."""
    import pandas as pd

    rng = np.random.default_rng(8)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["tenure_months", "monthly_spend", "tickets"])
    path = tmp_path_factory.mktemp("named") / "named.joblib"
    joblib.dump(_fit(frame, (frame["monthly_spend"] > 0).astype(int).to_numpy()), path)
    return path


def client_for(path: Path, **kwargs: Any) -> TestClient:
    server = ModelServer(load_model(path, scan_config(HIGH)), **kwargs)
    return TestClient(build_app(server))


# --------------------------------------------------------------------------- predictions


def test_predictions_equal_the_models_own(model_file: Path) -> None:
    model = joblib.load(model_file)
    rows = np.random.default_rng(1).normal(size=(25, 4)).round(6)
    with client_for(model_file) as client:
        answer = client.post("/predict", json={"instances": rows.tolist()})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == model.predict(rows).tolist()
        np.testing.assert_allclose(body["scores"], model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)
        records = [dict(zip("abcd", row, strict=True)) for row in rows.tolist()]  # no names: records[0]'s order
        assert client.put("/predict", json={"records": records}).json() == body
        health = client.get("/health").json()
        assert health["requests"] == 2 and health["n_features"] == 4 and health["format"] == "joblib"
        assert len(health["sha256"]) == 64


def test_records_follow_the_models_feature_names(named_model_file: Path) -> None:
    import pandas as pd

    model = joblib.load(named_model_file)
    frame = pd.DataFrame({"tenure_months": [1.0, -2.0], "monthly_spend": [0.5, -0.3], "tickets": [0.0, 1.0]})
    shuffled = [{"tickets": r["tickets"], "monthly_spend": r["monthly_spend"], "tenure_months": r["tenure_months"]}
                for r in frame.to_dict("records")]
    with client_for(named_model_file) as client:
        body = client.post("/predict", json={"records": shuffled}).json()
        assert body["predictions"] == model.predict(frame).tolist()
        np.testing.assert_allclose(body["scores"], model.predict_proba(frame)[:, 1], atol=1e-12)
        by_instances = client.post("/predict", json={"instances": frame.to_numpy().tolist()}).json()
        assert by_instances == body
        missing = client.post("/predict", json={"records": [{"tenure_months": 1, "tickets": 0}]})
        assert missing.status_code == 422 and "'monthly_spend'" in missing.json()["error"]
        extra = client.post("/predict", json={"records": [{**shuffled[0], "age": 40}]})
        assert extra.status_code == 422 and "'age'" in extra.json()["error"]


def test_the_sagemaker_routes_answer_like_predict(model_file: Path) -> None:
    rows = [[0.1, 0.2, 0.3, 0.4]]
    with client_for(model_file) as client:
        plain = client.post("/predict", json={"instances": rows}).json()
        signed = "AWS4-HMAC-SHA256 Credential=test/20261201/eu-west-1/sagemaker/aws4_request, Signature=00"
        answer = client.post("/endpoints/churn-prod/invocations", content=json.dumps({"instances": rows}),
                             headers={"Content-Type": "application/json", "Authorization": signed})
        assert answer.status_code == 200 and answer.json() == plain
        assert answer.headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
        assert client.post("/invocations", json={"instances": rows}).json() == plain
        assert client.get("/ping").status_code == 200
        bad = client.post("/endpoints/churn-prod/invocations", content=b"{nope")
        assert bad.status_code == 400 and bad.headers["x-amzn-ErrorType"] == "ValidationError"
        assert "not valid JSON" in bad.json()["message"]
        assert client.post("/endpoints/bad_name/invocations", json={"instances": rows}).status_code == 400


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("body, status, says", [
    (b"{not json", 400, "not valid JSON"),
    (b'{"instances": [["\xc3\x28"]]}', 400, "not UTF-8"),
    (b"", 400, "not valid JSON"),
    (b"[[1, 2, 3, 4]]", 400, "must be a JSON object"),
    (b'{"rows": [[1, 2, 3, 4]]}', 400, 'exactly one key, "instances" or "records"'),
    (b'{"instances": [[1, 2, 3, 4]], "records": []}', 400, "exactly one key"),
    (b'{"instances": []}', 400, "non-empty list"),
    (b'{"instances": [1, 2, 3, 4]}', 400, "instances[0] must be a list"),
    (b'{"instances": [[1, 2, [3], 4]]}', 400, "instances[0][2] must be a number"),
    (b'{"records": [[1, 2, 3, 4]]}', 400, "records[0] must be a JSON object"),
    (b'{"records": [{"a": 1, "b": {"c": 1}, "c": 1, "d": 1}]}', 400, "records[0].b must be a number"),
    (b'{"instances": [[1, 2, 3]]}', 422, "instances[0] has 3 values; the model expects 4 features"),
    (b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}', 422, "instances[1] has 5 values"),
    (b'{"instances": [["a", "b", "c", "d"]]}', 422, "the model could not score the rows"),
    (b'{"records": [{"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1}]}', 422, "records[1] lacks 'b', 'c', 'd'"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "the body"),
])
def test_bad_bodies_get_a_4xx_naming_the_problem(model_file: Path, body: bytes, status: int, says: str) -> None:
    with client_for(model_file) as client:
        answer = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == status, answer.text
        assert says in answer.json()["error"], answer.json()


def test_a_body_over_the_bound_is_413_and_other_methods_405(model_file: Path) -> None:
    with client_for(model_file) as client:
        big = b'{"instances": [[' + b"1," * (MAX_BODY // 2) + b"1]]}"
        assert client.post("/predict", content=big).status_code == 413

        def chunks() -> Any:  # no Content-Length: the bound is applied while reading
            yield b'{"instances": [['
            for _ in range(MAX_BODY // 4096 + 1):
                yield b"1," * 2048

        assert client.post("/predict", content=chunks()).status_code == 413
        too_many = json.dumps({"instances": [[0, 0, 0, 0]] * (sm.MAX_ROWS + 1)})
        assert client.post("/predict", content=too_many).status_code == 413
        assert client.get("/predict").status_code == 405
        assert client.get("/health").json()["requests"] == 1  # only bodies that were read count


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize("rate, n", [(0.1, 1000), (0.013, 1000), (0.25, 40), (1.0, 7), (0.0, 50)])
def test_the_injected_error_count_is_exact(model_file: Path, rate: float, n: int) -> None:
    with client_for(model_file, errors=ErrorSchedule(rate, seed=3), error_status=503) as client:
        statuses = [client.post("/predict", json={"instances": [[0, 0, 0, 0]]}).status_code for _ in range(n)]
        assert statuses.count(503) == round(n * rate) and set(statuses) <= {200, 503}
        assert client.get("/health").json()["injected_errors"] == round(n * rate)


def test_the_error_schedule_is_even_and_seeded() -> None:
    for rate in (0.01, 0.013, 0.1, 1 / 3, 0.5):
        for seed in (0, 1, 2):
            schedule = ErrorSchedule(rate, seed=seed)
            hits = [schedule.hits(i) for i in range(3000)]
            for start, n in ((0, 3000), (17, 500), (1000, 77)):
                count = sum(hits[start:start + n])
                assert int(np.floor(n * rate)) <= count <= int(np.ceil(n * rate)), (rate, seed, start, n)
            assert sum(hits) == schedule.count(3000)
    same = [ErrorSchedule(0.05, seed=9).hits(i) for i in range(200)]
    assert same == [ErrorSchedule(0.05, seed=9).hits(i) for i in range(200)]
    assert same != [ErrorSchedule(0.05, seed=10).hits(i) for i in range(200)]
    with pytest.raises(ValueError):
        ErrorSchedule(1.5)


def test_the_injected_status_and_body(model_file: Path) -> None:
    with client_for(model_file, errors=ErrorSchedule(1.0), error_status=429) as client:
        answer = client.post("/predict", json={"instances": [[0, 0, 0, 0]]})
        assert answer.status_code == 429 and "injected error" in answer.json()["error"]
        aws = client.post("/endpoints/x/invocations", json={"instances": [[0, 0, 0, 0]]})
        assert aws.status_code == 429 and aws.headers["x-amzn-ErrorType"] == "ValidationError"
    with pytest.raises(ValueError, match="4xx or 5xx"):
        ModelServer(load_model(model_file, scan_config(HIGH)), error_status=200)


def test_a_request_waiting_its_injected_latency_does_not_hold_the_others(model_file: Path) -> None:
    """A request told to wait 60 s is still waiting when a request after it, told to wait nothing, is answered:
    the wait is an ``await``. A wait that held the event loop would let the second in only after the first's 60 s,
    and the first would be answered first. No wall-clock bound: a loaded machine makes this slower, not wrong."""
    server = ModelServer(load_model(model_file, scan_config(HIGH)), latency=parse_latency("constant:60000"))

    async def run() -> tuple[int, bool]:
        transport = httpx.ASGITransport(app=build_app(server))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            waiting = asyncio.ensure_future(client.post("/predict", json={"instances": [[0, 0, 0, 0]]}))
            try:
                while server.requests < 1:
                    await asyncio.sleep(0.01)
                server.latency = parse_latency("none")
                answered = await client.post("/predict", json={"instances": [[0, 0, 0, 0]]})
                return answered.status_code, waiting.done()
            finally:
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)

    assert asyncio.run(run()) == (200, False)


def test_the_injected_latency_is_waited_before_answering(model_file: Path) -> None:
    server = ModelServer(load_model(model_file, scan_config(HIGH)), latency=parse_latency("constant:200"))
    with TestClient(build_app(server)) as client:
        started = time.perf_counter()
        assert client.post("/predict", json={"instances": [[0, 0, 0, 0]]}).status_code == 200
        assert time.perf_counter() - started >= 0.2  # a lower bound only: waiting longer is never wrong here


def test_latency_distributions_are_drawn_as_asked() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([parse_latency("lognormal:median=50,sigma=0.5").draw(rng) for _ in range(20_000)]) * 1000
    assert abs(np.median(draws) - 50) < 1.5
    assert abs(np.percentile(draws, 99) - 50 * np.exp(0.5 * 2.3263)) < 8  # the lognormal's p99: ~160 ms
    uniform = np.array([parse_latency("uniform:10,30").draw(rng) for _ in range(5000)]) * 1000
    assert 10 <= uniform.min() and uniform.max() <= 30 and abs(uniform.mean() - 20) < 0.5
    assert parse_latency("uniform:low=10,high=30") == Latency("uniform", 10, 30)
    assert parse_latency(None, latency_ms=200) == parse_latency("constant:200") == Latency("constant", 200)
    assert parse_latency(None).draw(rng) == 0.0 and parse_latency("constant:200").draw(rng) == 0.2


@pytest.mark.parametrize("text", ["gaussian:1", "constant", "constant:-1", "constant:abc", "uniform:30,10",
                                  "uniform:1", "lognormal:median=50", "lognormal:median=0,sigma=1",
                                  "lognormal:50,0.5", "constant:nan"])
def test_bad_latency_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--latency"):
        parse_latency(text)
    with pytest.raises(ValueError, match="not both"):
        parse_latency("constant:1", latency_ms=1)


# --------------------------------------------------------------------------- refused files


@pytest.fixture
def never_unpickled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything is unpickled."""
    import pickle

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused file was unpickled")

    monkeypatch.setattr(joblib, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)


def test_a_malicious_joblib_is_refused_and_never_loaded(tmp_path: Path, never_unpickled: None) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "model.joblib"
    joblib.dump({"weights": np.arange(4.0), "hook": Evil(marker)}, evil)
    with pytest.raises(Refused, match=r"did not pass the security scan.*denied callable posix\.system"):
        load_model(evil, scan_config(HIGH))
    result = runner.invoke(app, ["serve-model", str(evil), "--policy", str(HIGH), "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "refused" in result.output and "posix.system" in result.output
    assert not marker.exists()


def test_a_hand_built_payload_and_an_unknown_callable_are_refused(tmp_path: Path, never_unpickled: None) -> None:
    marker = tmp_path / "PWNED"
    sample = global_reduce(4, marker=str(marker))
    path = tmp_path / "model.joblib"
    path.write_bytes(sample.data)
    with pytest.raises(Refused, match=r"denied callable os\.system"):
        load_model(path, scan_config(None))
    strange = tmp_path / "strange.joblib"
    joblib.dump({"weights": np.arange(4.0), "extra": Strange()}, strange)
    with pytest.raises(Refused, match=r"unknown callable \S*test_serve_model\.Strange"):
        load_model(strange, scan_config(HIGH))
    assert not marker.exists()


def test_formats_the_tier_or_the_server_does_not_take_are_refused(tmp_path: Path, model_file: Path) -> None:
    plain = tmp_path / "model.pkl"  # a plain pickle: the high tier allows joblib, onnx, safetensors
    plain.write_bytes(model_file.read_bytes())
    with pytest.raises(Refused, match="format 'pickle' is not allowed by the tier"):
        load_model(plain, scan_config(HIGH))
    text = tmp_path / "weights.joblib"
    text.write_text("not a model")
    with pytest.raises(Refused):
        load_model(text, scan_config(HIGH))
    with pytest.raises(Refused, match="cannot be read"):
        load_model(tmp_path / "missing.joblib", scan_config(HIGH))
    not_a_model = tmp_path / "array.joblib"
    joblib.dump(np.arange(3.0), not_a_model)
    with pytest.raises(Refused, match="no predict"):
        load_model(not_a_model, scan_config(HIGH))


def test_a_file_changed_after_it_was_read_is_refused(tmp_path: Path, model_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(model_file.read_bytes())
    real = sm.scan_path

    def swap_then_scan(target: Path, *args: Any, **kwargs: Any) -> Any:
        joblib.dump(joblib.load(model_file), target, compress=3)  # other (benign) bytes than were read
        return real(target, *args, **kwargs)

    monkeypatch.setattr(sm, "scan_path", swap_then_scan)
    with pytest.raises(Refused, match="changed while it was scanned"):
        load_model(path, scan_config(HIGH))


def test_the_scan_config_is_the_high_tiers(tmp_path: Path) -> None:
    high = scan_config(HIGH)
    assert high.unknown_callable is Action.FAIL and "sklearn" in high.frameworks
    builtin = scan_config(tmp_path / "absent.yaml")
    assert builtin.unknown_callable is Action.FAIL and builtin.allowed_formats == ["joblib", "onnx", "safetensors"]
    no_scan = tmp_path / "policy.yaml"
    no_scan.write_text("tier: x\ngates:\n  - id: artifact_integrity\n")
    with pytest.raises(Refused, match="runs no security_scan gate"):
        scan_config(no_scan)
    no_scan.write_text("gates:\n  - id: security_scan\n    config: {frameworks: [nope]}\n")
    with pytest.raises(Refused, match="unknown framework"):
        scan_config(no_scan)


def test_bad_cli_options_exit_2(model_file: Path) -> None:
    for args in (["--latency", "gaussian:1"], ["--error-rate", "2"], ["--error-status", "200"],
                 ["--latency", "constant:1", "--latency-ms", "1"]):
        result = runner.invoke(app, ["serve-model", str(model_file), "--policy", str(HIGH), *args])
        assert result.exit_code == 2 and "refused" in result.output, (args, result.output)


# --------------------------------------------------------------------------- a real server, and boto3


@pytest.fixture
def served(model_file: Path, tmp_path: Path) -> Any:
    # the timeout guards against a hang only: at this session's low priority a server's start-up may take a minute
    server = model_server.start(model_file, "--policy", str(HIGH), "--latency", "constant:100",
                                log=tmp_path / "serve.log", cwd=tmp_path, timeout=600)
    try:
        yield server.base_url
    finally:
        server.stop()


def test_boto3_sagemaker_runtime_gets_the_predictions_from_a_real_server(served: str, model_file: Path) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    rows = [[0.3, -0.2, 1.0, 0.0], [-1.0, -1.0, 0.5, 2.0]]
    client = boto3.client("sagemaker-runtime", endpoint_url=served, region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"max_attempts": 1}))
    started = time.perf_counter()
    answer = client.invoke_endpoint(EndpointName="churn-prod", ContentType="application/json",
                                    Accept="application/json", Body=json.dumps({"instances": rows}))
    assert time.perf_counter() - started >= 0.1  # the injected constant latency, through a real socket
    body = json.loads(answer["Body"].read())
    model = joblib.load(model_file)
    assert body["predictions"] == model.predict(np.array(rows)).tolist()
    np.testing.assert_allclose(body["scores"], model.predict_proba(np.array(rows))[:, 1], atol=1e-12)
    assert answer["InvokedProductionVariant"] == "AllTraffic" and answer["ContentType"] == "application/json"
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="churn-prod", ContentType="application/json", Body=b'{"instances": [[1]]}')
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 422
    assert "expects 4 features" in info.value.response["Error"]["Message"]
    plain = httpx.post(f"{served}/predict", json={"instances": rows}, timeout=5)
    assert plain.status_code == 200 and plain.json() == body


def test_a_port_already_taken_is_refused_naming_it(model_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve-model", str(model_file), "--policy", str(HIGH), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"refused: cannot listen on 127.0.0.1:{port}" in result.output


def test_the_launcher_reports_a_refused_file_with_the_servers_words(tmp_path: Path) -> None:
    evil = tmp_path / "model.joblib"
    joblib.dump({"hook": Evil(tmp_path / "PWNED")}, evil)
    with pytest.raises(RuntimeError, match=r"serve-model exited \(2\): refused: .*posix\.system"):
        model_server.start(evil, "--policy", str(HIGH), log=tmp_path / "serve.log", cwd=tmp_path, timeout=600)
    assert not (tmp_path / "PWNED").exists()

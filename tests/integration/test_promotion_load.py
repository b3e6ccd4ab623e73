"""The load_test and cost gates inside real promotions: real Prefect, real SeaweedFS, the run in a subprocess, the
candidate served by ``clearance serve-model`` on a free loopback port (allowlisted for the run's process).

A candidate answering in milliseconds passes load_test at the test tier's short plan, and cost prices what it
sustained (from ``earlier_gates``) with the manifest's price; the same candidate served with 2 s of injected latency
fails load_test and stops the promotion there (``gate-failed``; cost never runs).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from clearance.dev import model_server
from tests.integration.promotion_kit import (
    POLICY_HIGH,
    Candidate,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
)

pytestmark = pytest.mark.integration

VERSION = "1.0.0"
FEATURES = ("tenure", "spend", "calls")
#: A short plan: 0.5 s of warm-up, then 2 s at 20 requests/s, each answered within 1 s or a timeout. The three
#: promotions of this module run at once on what may be a 2-core machine, so their generators share the cores
#: with each other and with the flows: sends may leave tens of milliseconds late (the shipped tiers allow 10 ms
#: at p99). That is a property of this test machine, not of the servers judged here (2 s of injected latency is
#: still 2 s), so this test tier tolerates 100 ms, and a run whose generator stalled past that anyway (1.4 s was
#: seen in CI) is offered again, up to three runs (``generator.attempts``). For the same reason its latency
#: levels sit just under the 1 s timeout: `make test` runs this beside two other sessions on 2 cores, where a
#: loopback answer of a fast server took 650 ms at p95 (the shipped tiers' 250/500 ms would fail it). What tells
#: fast from slow here is unchanged: 2 s of latency times out every request.
LOAD_TEST = {"rate": 20, "duration": "2s", "warmup": "0.5s", "timeout": "1s", "max_requests": 1000,
             "connections": 8, "generator": {"max_cpu": 1.0, "max_lateness_p99_ms": 100, "attempts": 3},
             "slo": {"p50_ms": {"warn": 600, "fail": 950}, "p95_ms": {"warn": 900, "fail": 990},
                     "p99_ms": {"warn": 950, "fail": 999}}}
COST = {"budget_per_1000": {"warn": 0.05, "fail": 0.10}, "budget_per_month": {"warn": 2000, "fail": 5000},
        "require_price": True}


def tiny_model(folder: Path) -> tuple[Path, pa.Table]:
    """A logistic regression on three numeric columns (joblib) and 200 rows of eval data with a label."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    model = LogisticRegression().fit(x, y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    path = folder / "model.joblib"
    path.write_bytes(buffer.getvalue())
    table = pa.table({**{name: x[:, i] for i, name in enumerate(FEATURES)}, "label": y})
    return path, table


def load_candidate(tmp_path: Path, s3, url: str, *, wrong_pin: bool = False) -> Candidate:
    """The kit's high tier plus load_test and cost; a version with an eval dataset the request bodies come from,
    served at ``url``, priced in its manifest (``wrong_pin``: its artifact pinned to another digest, so
    artifact_integrity fails first)."""
    policy = copy.deepcopy(POLICY_HIGH)
    policy["gates"] += [{"id": "load_test", "mode": "blocking", "config": LOAD_TEST},
                        {"id": "cost", "mode": "blocking", "config": COST}]
    cand = make_candidate(tmp_path, s3, versions=(VERSION,), policy=policy)
    _, table = tiny_model(tmp_path)
    local = tmp_path / "eval.parquet"
    pq.write_table(table, local)
    key = f"candidates/{cand.model}/{VERSION}/eval.parquet"
    s3.put_if_absent(key, local.read_bytes())
    path = cand.config_dir / "models" / f"{cand.model}.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["versions"][VERSION]["datasets"] = [{"role": "eval", "uri": key,
                                             "sha256": hashlib.sha256(local.read_bytes()).hexdigest()}]
    doc["serving_endpoint"] = url
    if wrong_pin:
        doc["versions"][VERSION]["artifacts"][0]["sha256"] = "0" * 64
    doc["serving"] = {"body": {"dataset_role": "eval", "columns": list(FEATURES), "sample": 100},
                      "expected_traffic_rps": 10, "instance_price_per_hour": 0.115, "instances": 1}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cand


def gate_json(s3, prefix: str, gate: str) -> dict[str, Any] | None:
    key = f"{prefix}gate-{gate}.json"
    return json.loads(s3.get_bytes(key)[0]) if s3.head(key) is not None else None


@dataclass
class Run:
    """One promotion run of the module's candidates: its candidate, exit code, log and evidence prefix."""

    cand: Candidate
    code: int
    log: Path
    url: str
    prefix: str = ""
    run_id: str = ""
    served: int = -1  # requests the model server answered, read before it stopped


@pytest.fixture(scope="module")
def runs(s3_service, prefect_service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Both promotions at once (they take most of their time starting up): a candidate served as it is, in a dry
    run, and the same served with 2 s of injected latency, in a real run; loopback allowlisted for their processes
    (``CLEARANCE_LOAD_TEST_ALLOWED_HOSTS``)."""
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    patch = pytest.MonkeyPatch()
    patch.setenv("CLEARANCE_LOAD_TEST_ALLOWED_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    store = ObjectStore.from_settings(get_settings())
    servers: list[model_server.ServedModel] = []
    try:
        started = {}
        for name, extra, dry_run in (("fast", (), True), ("slow", ("--latency", "constant:2000"), False),
                                     ("stopped", (), True)):
            folder = tmp_path_factory.mktemp(name)
            model_file, _ = tiny_model(folder)
            # the timeout guards against a hang only: on a loaded machine a server's start-up may take a minute
            server = model_server.start(model_file, *extra, log=folder / "serve.log", timeout=600)
            servers.append(server)
            url = server.predict_url
            cand = load_candidate(folder, store, url, wrong_pin=name == "stopped")
            log = folder / "run.log"
            started[name] = (cand, log, url, start_direct_run(cand, VERSION, dry_run=dry_run, log=log))
        done = {name: Run(cand, finish(proc, timeout=90), log, url)
                for name, (cand, log, url, proc) in started.items()}
        for run in done.values():
            run.run_id = find_run(run.cand.model, VERSION)
            run.prefix = f"evidence/{run.cand.model}/{VERSION}/{run.run_id}/"
            health = run.url.replace("/predict", "/health")
            with urllib.request.urlopen(health, timeout=5) as answer:
                run.served = json.loads(answer.read())["requests"]
        yield done
    finally:
        for server in servers:
            server.stop()
        patch.undo()
        get_settings.cache_clear()


def test_a_fast_candidate_passes_load_test_and_cost(s3, runs):
    run = runs["fast"]
    assert run.code == 0, run.log.read_text()[-3000:]
    prefix = run.prefix
    load = gate_json(s3, prefix, "load_test")
    assert load is not None
    assert load["status"] in ("pass", "warn"), [(c["id"], c["status"], c["message"]) for c in load["checks"]
                                                if c["status"] != "pass"]
    assert not [c for c in load["checks"] if c["status"] == "fail"]
    assert load["metrics"]["load_test.offered_rps"] == 20
    sustainable = load["metrics"]["load_test.sustainable_rps"]
    assert 18 <= sustainable <= 21
    # the load run's plots were uploaded next to the result, with the digests it recorded
    for item in load["evidence"]:
        body = s3.get_bytes(prefix + item["name"])[0]
        assert hashlib.sha256(body).hexdigest() == item["sha256"]
    assert {"load_test_latency_over_time.png", "load_test_latency_distribution.png"} <= {e["name"] for e in
                                                                                       load["evidence"]}
    cost = gate_json(s3, prefix, "cost")
    assert cost is not None and cost["status"] == "pass", cost
    # cost priced what load_test measured (earlier_gates), with the manifest's price
    assert cost["metrics"]["cost.per_1000"] == pytest.approx(0.115 / (sustainable * 3600) * 1000)
    assert cost["metrics"]["cost.instances_needed"] == 1


def test_a_slow_candidate_fails_load_test_and_stops_the_promotion(s3, runs):
    from tasks.ledger import read_ledger

    run = runs["slow"]
    assert run.code != 0, run.log.read_text()[-3000:]
    entries = [e for e in read_ledger(s3, run.cand.model) if e.payload.get("run") == run.run_id]
    assert entries[-1].kind == "gate-failed", [e.kind for e in entries]
    load = gate_json(s3, run.prefix, "load_test")
    assert load is not None
    assert load["status"] == "fail", [(c["id"], c["status"], c["message"]) for c in load["checks"]
                                      if c["status"] != "pass"]
    assert entries[-1].payload["reason"] == "gate load_test fail: promotion stopped"
    failed = {c["id"] for c in load["checks"] if c["status"] == "fail"}
    assert "errors" in failed, load["checks"]  # every request timed out (1 s) against 2 s of latency
    assert gate_json(s3, run.prefix, "cost") is None  # a blocking failure stops the gates: cost never ran


def test_a_candidate_an_earlier_gate_stopped_is_never_loaded(s3, runs):
    run = runs["stopped"]
    assert run.code == 0, run.log.read_text()[-3000:]  # a dry run ends "dry-run" whatever the gates said
    integrity = gate_json(s3, run.prefix, "artifact_integrity")
    assert integrity is not None and integrity["status"] == "fail"
    assert gate_json(s3, run.prefix, "load_test") is None
    assert run.served == 0  # the load test runs just before its gate: this endpoint got no request at all
    assert runs["fast"].served > 0

"""The demo's pieces that need no server: its data meets the example contract, its predictions are fair and
hold no personal data, and the manifest it writes validates, pins every dataset, records the lineage and points
the gates at the clearance bucket."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.config import load_config_dir
from clearance.core import keys
from clearance.dev import demo
from clearance.settings import Settings
from gates.base import GateInputs, Status, run_gate
from gates.data_check.models import DatasetContract
from tasks.datasets import split_uri


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return demo.demo_files()


def test_demo_data_is_a_few_thousand_rows_meeting_the_example_contract(files, tmp_path):
    train = pq.read_table(pa.BufferReader(files["train.parquet"]))
    evaluation = pq.read_table(pa.BufferReader(files["eval.parquet"]))
    assert (train.num_rows, evaluation.num_rows) == (demo.TRAIN_ROWS, demo.ROWS - demo.TRAIN_ROWS)
    contract = DatasetContract.model_validate(demo.example_contract("eval"))
    assert contract.strict_columns and set(contract.columns) == set(train.column_names)
    assert contract.label is not None and contract.label.column == "churned" and contract.key == ["customer_id"]
    assert demo.example_contract("train") == demo.example_contract("eval")
    # the model was trained on the train split: it predicts it, with one feature per matrix column
    import io

    import joblib

    model = joblib.load(io.BytesIO(files["model.joblib"]))
    accuracy = (model.predict(demo.features(evaluation)) == evaluation["churned"].to_numpy()).mean()
    assert accuracy > 0.7


def test_the_demo_manifest_validates_and_pins_the_datasets(files, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    version = "1.0.7"
    placed = {name: (keys.candidate_key(demo.MODEL, version, name), body) for name, body in files.items()}
    configs = demo.write_demo_configs(version, placed)
    result = CliRunner().invoke(app, ["validate", str(configs)])
    assert result.exit_code == 0, result.output
    manifest = load_config_dir(configs).manifests[demo.MODEL]
    entry = manifest.versions[version]
    assert [a.key for a in entry.artifacts] == [f"candidates/{demo.MODEL}/{version}/model.joblib"]
    datasets = {d.role: d for d in entry.datasets}
    assert set(datasets) == {"train", "eval", "predictions"}
    bucket = Settings().bucket
    for role, ref in datasets.items():
        assert ref.uri == f"candidates/{demo.MODEL}/{version}/{role}.parquet"  # as in the example manifest
        assert ref.sha256 == hashlib.sha256(files[f"{role}.parquet"]).hexdigest()
        assert ref.contract == demo.example_contract(role)
        # the flow locates a key without a scheme in the clearance bucket (tasks/datasets.py)
        assert split_uri(ref.uri, Settings()) == ("s3", f"{bucket}/{ref.uri}")
    raw = yaml.safe_load((configs / "models" / f"{demo.MODEL}.yaml").read_text())
    assert raw["risk_tier"] == "high" and load_config_dir(configs).policies["high"].gate("data_check")
    # what compliance_review reads: lineage, the evaluation section, a KPI reviewed in the future, the
    # example's sponsor, operations and model card
    assert entry.lineage is not None and re.fullmatch(r"[0-9a-f]{40}", entry.lineage.code_revision or "")
    assert entry.lineage.training_run and version in entry.lineage.training_run
    assert entry.evaluation is not None and entry.evaluation.model_dump() == \
        demo.example_version()["evaluation"] | {"threshold": 0.5}
    assert manifest.kpi is not None and manifest.kpi.review_date == date.today() + timedelta(days=180)
    example = demo.example_manifest()
    assert manifest.sponsor == example["sponsor"] and manifest.model_card == example["model_card"]
    assert manifest.operations is not None and manifest.operations.monitoring == example["operations"]["monitoring"]


def test_the_demo_predictions_are_the_models_on_eval_with_independent_protected_attributes(files):
    import io

    import joblib
    import numpy as np

    evaluation = pq.read_table(pa.BufferReader(files["eval.parquet"]))
    predictions = pq.read_table(pa.BufferReader(files["predictions.parquet"]))
    assert predictions.column_names == ["customer_id", "churned", "predicted", "score", "gender", "age_band"]
    assert predictions["customer_id"].equals(evaluation["customer_id"])
    assert predictions["churned"].equals(evaluation["churned"])
    model = joblib.load(io.BytesIO(files["model.joblib"]))
    score = model.predict_proba(demo.features(evaluation))[:, 1]
    assert np.allclose(predictions["score"].to_numpy(), score, atol=1e-6)
    assert (predictions["predicted"].to_numpy() == (predictions["score"].to_numpy() >= 0.5)).all()
    contract = DatasetContract.model_validate(demo.example_contract("predictions"))
    assert set(contract.columns) == set(predictions.column_names)
    assert set(predictions["gender"].to_pylist()) == set(demo.GENDERS)
    assert set(predictions["age_band"].to_pylist()) == set(demo.AGE_BANDS)
    # deterministic
    assert demo.demo_files()["predictions.parquet"] == files["predictions.parquet"]


def test_the_demo_predictions_warn_once_on_age_and_pass_everything_else_at_the_default_levels(files):
    from gates.compliance_review.fairness import fairness_from_table, judge_fairness

    predictions = pq.read_table(pa.BufferReader(files["predictions.parquet"]))
    evaluation = demo.example_version()["evaluation"]
    result = fairness_from_table(predictions, label=evaluation["label"], prediction=evaluation["prediction"],
                                 score=evaluation["score"], attributes=evaluation["protected_attributes"],
                                 intersections=[tuple(pair) for pair in evaluation["intersections"]])
    checks = judge_fairness(result)
    assert {c.id.split(":")[1] for c in checks} == {"gender", "age_band", "gender&age_band"}
    not_passing = {c.id: c.status for c in checks if c.status is not Status.PASS}
    # one finding (18-29 year olds are selected more often), seen in the age bands and in the gender × age groups
    assert not_passing == {"fairness:age_band:demographic_parity_ratio": Status.WARN,
                           "fairness:gender&age_band:demographic_parity_ratio": Status.WARN}, not_passing
    metrics = {c.id: c.observed for c in checks}
    for attr in ("gender", "age_band", "gender&age_band"):  # with a margin: a retrained model keeps the verdicts
        assert metrics[f"fairness:{attr}:demographic_parity_difference"] < 0.09
        assert metrics[f"fairness:{attr}:equalized_odds_difference"] < 0.09
    assert metrics["fairness:gender:demographic_parity_ratio"] > 0.85
    assert 0.65 < metrics["fairness:age_band:demographic_parity_ratio"] < 0.78
    # the tilt moves selection only: every band keeps its size and its true-label mix
    untilted_sizes = {band: share * len(predictions) / 20 for band, share in demo.AGE_BANDS.items()}
    for group in result.attributes[1].groups:
        assert abs(group.size - untilted_sizes[group.name]) <= 2


def test_the_demo_data_holds_no_personal_data(files):
    from gates.compliance_review.personal_data import scan_table

    for name in ("train.parquet", "eval.parquet", "predictions.parquet"):
        table = pq.read_table(pa.BufferReader(files[name]))
        found = {scan.column: [d.detector for d in scan.detections if d.hits] for scan in scan_table(table)}
        assert not any(found.values()), (name, found)


def test_files_mode_writes_the_predictions_and_a_model_card(tmp_path):
    from gates.compliance_review.model_card import REQUIRED_BY_TIER, check_model_card, read_model_card

    written = {path.name for path in demo.write_files(tmp_path)}
    assert {"model.joblib", "train.parquet", "eval.parquet", "predictions.parquet", "requirements.txt",
            "contract.yaml", "MODEL_CARD.md"} == written
    card = read_model_card({"risk_tier": "high"}, (tmp_path / "MODEL_CARD.md").read_text())
    checks = check_model_card(card, sorted(REQUIRED_BY_TIER["high"]))
    assert all(c.status is Status.PASS for c in checks), [(c.id, c.message) for c in checks if c.status is not
                                                          Status.PASS]
    assert {f"model_card:{s}" for s in REQUIRED_BY_TIER["high"]} <= {c.id for c in checks}


def test_the_demo_data_passes_data_check_under_the_high_tier(files, tmp_path):
    """What the promotion in `make demo` runs, with the datasets local instead of in the bucket."""
    from tasks.preflight import local_gate_inputs

    for name in ("train.parquet", "eval.parquet", "predictions.parquet"):
        (tmp_path / name).write_bytes(files[name])
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(demo.example_contract("train")))
    predictions_contract = tmp_path / "predictions-contract.yaml"
    predictions_contract.write_text(yaml.safe_dump(demo.example_contract("predictions")))
    config = load_config_dir(demo.REPO / "configs").policies["high"].gate("data_check")
    assert config is not None
    inputs: GateInputs = local_gate_inputs(datasets={"train": tmp_path / "train.parquet",
                                                     "eval": tmp_path / "eval.parquet",
                                                     "predictions": tmp_path / "predictions.parquet"},
                                           contracts={"predictions": predictions_contract},
                                           every_contract=contract, evidence_dir=tmp_path / "evidence")
    result = run_gate("data_check", inputs, config.config)
    assert result.status is Status.PASS, result.problems()
    ids = {c.id for c in result.checks}
    assert {"label_balance:eval", "psi:eval:region", "ks:eval:tenure_months", "digest:train"} <= ids
    assert "reference" not in ids  # train is the reference: require_reference is met, drift is measured
    # the predictions meet their contract, and are never compared for drift
    assert "digest:predictions" in ids and not [i for i in ids if i.startswith(("psi:predictions", "ks:predictions"))]


def test_the_demo_passes_compliance_review_under_the_high_tier(files, tmp_path, monkeypatch):
    """What the promotion in `make demo` runs, on local files: a pre-flight, so the earlier gates' evidence is
    absent (those controls are skipped, those readiness factors missing); nothing fails."""
    from tasks.preflight import local_gate_inputs

    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    version = "1.0.0"
    placed = {name: (keys.candidate_key(demo.MODEL, version, name), body) for name, body in files.items()}
    configs = demo.write_demo_configs(version, placed)
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    spec = load_config_dir(configs).policies["high"].gate("compliance_review")
    assert spec is not None
    roles = ("train", "eval", "predictions")
    inputs = local_gate_inputs(datasets={role: tmp_path / f"{role}.parquet" for role in roles},
                               manifest=configs / "models" / f"{demo.MODEL}.yaml", version=version,
                               regulatory=configs / "regulatory.yaml", evidence_dir=tmp_path / "evidence")
    result = run_gate("compliance_review", inputs, spec.config)
    bad = [(c.id, c.status.value, c.message) for c in result.checks if c.status in (Status.FAIL, Status.ERROR)]
    assert bad == [] and result.status is Status.WARN, bad
    warned = {c.id for c in result.checks if c.status is Status.WARN}
    # a pre-flight has no earlier gates (data_check, security_scan, cost: missing); the rest is the demo's one
    # visible warning of this gate
    assert warned == {"readiness:data_readiness", "readiness:security", "readiness:cost_model",
                      "fairness:age_band:demographic_parity_ratio", "fairness:gender&age_band:demographic_parity_ratio"}
    assert result.metrics["evaluation.auc"] > 0.9 and result.metrics["personal_data.columns_flagged"] == 0
    ids = {c.id for c in result.checks}
    assert {"fairness:gender:demographic_parity_difference", "lineage:code_revision", "kpi:review_date",
            "regulatory:gdpr:gdpr-art-5-6-lawful-minimal-processing"} <= ids


def test_the_demo_model_passes_security_scan_under_the_high_tier(files, tmp_path):
    """The demo's joblib uses only allowlisted callables; its requirements are pinned and hit no advisory of the
    sample database; what is left is the database's age (a warning), and the storage posture (skipped here)."""
    from tasks.preflight import local_gate_inputs

    (tmp_path / "model.joblib").write_bytes(files["model.joblib"])
    (tmp_path / "requirements.txt").write_bytes(files["requirements.txt"])
    spec = load_config_dir(demo.REPO / "configs").policies["high"].gate("security_scan")
    assert spec is not None
    inputs = local_gate_inputs(artifacts=[tmp_path / "model.joblib"], requirements=tmp_path / "requirements.txt",
                               evidence_dir=tmp_path / "evidence")
    inputs.extra["advisory_db"] = str(demo.REPO / "configs" / "advisories")
    result = run_gate("security_scan", inputs, spec.config)
    by_id = {c.id: c for c in result.checks}
    callables = next(c for c in result.checks if c.id.startswith("callables:"))
    assert callables.status is Status.PASS and callables.observed.startswith("0 denied, 0 unknown")
    assert by_id["dependencies"].status is Status.PASS and by_id["advisory_db"].status is Status.PASS
    assert not [c for c in by_id if c.startswith(("advisory:", "requirement:", "secrets:"))]
    assert {c.id for c in result.checks if c.status not in (Status.PASS, Status.SKIPPED)} <= {"advisory_db_age"}
    pinned = files["requirements.txt"].decode().split()
    assert {line.split("==")[0] for line in pinned if "==" in line} == set(demo.MODEL_PACKAGES)


def test_the_demo_manifest_names_the_requirements_file(files, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    placed = {name: (keys.candidate_key(demo.MODEL, "1.0.3", name), body) for name, body in files.items()}
    configs = demo.write_demo_configs("1.0.3", placed)
    entry = load_config_dir(configs).manifests[demo.MODEL].versions["1.0.3"]
    assert entry.requirements == f"candidates/{demo.MODEL}/1.0.3/requirements.txt"
    assert (configs / "advisories" / "PyPI").is_dir()  # the demo's CLEARANCE_ADVISORY_DB


def test_the_demo_manifest_serves_the_model_for_the_load_test_and_prices_it(files, tmp_path, monkeypatch):
    """The demo's serving section: the endpoint it was given, eval rows of the model's input columns as request
    bodies, an instance type the shipped price table prices, and an expected traffic one instance covers at the
    high tier's offered rate."""
    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    placed = {name: (keys.candidate_key(demo.MODEL, "1.0.4", name), body) for name, body in files.items()}
    configs = demo.write_demo_configs("1.0.4", placed, endpoint="http://127.0.0.1:8123/predict")
    loaded = load_config_dir(configs)
    manifest = loaded.manifests[demo.MODEL]
    assert manifest.serving_endpoint == "http://127.0.0.1:8123/predict"
    serving = manifest.serving
    assert serving is not None and serving.body.columns == list(demo.INPUTS) and serving.body.dataset_role == "eval"
    # without serving.body.columns (the example manifest, README's load-test pre-flight), the bodies hold every
    # eval column but the label and the key: the model's inputs, in its order
    evaluation = pq.read_table(pa.BufferReader(files["eval.parquet"]))
    contract = demo.example_contract("eval")
    default = [c for c in evaluation.column_names if c != contract["label"]["column"] and c not in contract["key"]]
    assert default == list(demo.INPUTS)
    assert loaded.prices is not None and serving.instance_type in loaded.prices
    high = loaded.policies["high"]
    load_test, cost = high.gate("load_test"), high.gate("cost")
    assert load_test is not None and cost is not None
    ids = [g.id for g in high.gates]
    assert ids.index("load_test") < ids.index("cost") < ids.index("compliance_review")
    assert serving.expected_traffic_rps is not None and serving.expected_traffic_rps < load_test.config["rate"]


def test_the_served_demo_model_answers_the_demo_request_bodies(files, tmp_path, monkeypatch):
    """What the load test sends in `make demo` (tasks/load_test.py request_bodies on the demo manifest and its eval
    data) is what `clearance serve-model` scores: the model takes the raw input columns; the security scan lets
    the file be loaded."""
    import asyncio

    import httpx

    from clearance.app.serve_model import ModelServer, build_app, load_model, scan_config
    from clearance.config.schema import DatasetRef
    from tasks.datasets import locate_dataset
    from tasks.load_test import request_bodies

    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    for name in ("model.joblib", "eval.parquet"):
        (tmp_path / name).write_bytes(files[name])
    placed = {name: (keys.candidate_key(demo.MODEL, "1.0.5", name), body) for name, body in files.items()}
    configs = demo.write_demo_configs("1.0.5", placed)
    manifest = load_config_dir(configs).manifests[demo.MODEL]
    locator = locate_dataset(DatasetRef(role="eval", uri=str(tmp_path / "eval.parquet")), compute_digest=False)
    bodies = request_bodies(manifest, "1.0.5", {"eval": locator})
    assert len(bodies) == 1000
    model = load_model(tmp_path / "model.joblib", scan_config(configs / "policies" / "high.yaml"))

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_app(ModelServer(model)))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            return [await client.post("/predict", content=body, headers={"Content-Type": "application/json"})
                    for body in bodies[:50]]

    answers = asyncio.run(post_all())
    assert {a.status_code for a in answers} == {200}, answers[0].text
    assert all(a.json()["predictions"][0] in (0, 1) for a in answers)


def test_the_demo_costs_pass_the_high_tier_budget_at_the_offered_rate(files, tmp_path, monkeypatch):
    """cost under the high tier, with the demo's serving section and a sustainable rate of the offered 50
    requests/s (what load_test reports when the SLO held), as earlier_gates carries it in the flow."""
    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    placed = {name: (keys.candidate_key(demo.MODEL, "1.0.6", name), body) for name, body in files.items()}
    configs = demo.write_demo_configs("1.0.6", placed)
    loaded = load_config_dir(configs)
    spec = loaded.policies["high"].gate("cost")
    assert spec is not None
    manifest = loaded.manifests[demo.MODEL]
    earlier = {"load_test": {"status": "pass", "message": "", "blocking": True,
                             "metrics": {"load_test.sustainable_rps": 49.5}}}
    inputs = GateInputs(model=demo.MODEL, version="1.0.6", manifest=manifest.model_dump(mode="json"),
                        extra={"earlier_gates": earlier, "price_table": loaded.price_table_json()})
    result = run_gate("cost", inputs, spec.config)
    assert result.status is Status.PASS, [(c.id, c.status, c.message) for c in result.checks]
    assert result.metrics["cost.instances_needed"] == 1


# --------------------------------------------------------------------------- running the demo again


def _live(store, version: str) -> None:
    from tasks.promotion import ProductionPointer

    pointer = ProductionPointer(model=demo.MODEL, version=version, artifact_digest="d" * 64, artifacts={},
                                run_id="r")
    store.put_if_absent(keys.pointer_key(demo.MODEL), pointer.model_dump_json().encode())


def test_the_next_demo_version_is_above_every_candidate_and_the_live_version() -> None:
    from tests.fakes.memory_store import MemoryStore

    store = MemoryStore()
    assert demo.next_version(store) == "1.0.0"
    for version in ("1.0.0", "1.0.1", "1.0.10"):  # 1.0.10 sorts below 1.0.2 as text, not as a version
        store.put_if_absent(keys.candidate_key(demo.MODEL, version, "model.joblib"), b"x")
    store.put_if_absent(keys.candidate_key(demo.MODEL, "hand-made", "model.joblib"), b"x")  # not a version: ignored
    assert demo.next_version(store) == "1.0.11"
    _live(store, "1.1.0")  # a user promoted 1.1.0 by hand: the demo must not promote 1.0.11 over it
    assert demo.next_version(store) == "1.1.1"


def test_running_the_demo_again_keeps_the_versions_already_pinned(files, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "STATE", tmp_path / "state")
    first = {name: (keys.candidate_key(demo.MODEL, "1.0.0", name), body) for name, body in files.items()}
    configs = demo.write_demo_configs("1.0.0", first)
    manifest_file = configs / "models" / f"{demo.MODEL}.yaml"
    raw = yaml.safe_load(manifest_file.read_text())
    raw["versions"]["1.1.0"] = raw["versions"]["1.0.0"] | {"notes": "pinned by hand"}  # the user's own pin
    manifest_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    second = {name: (keys.candidate_key(demo.MODEL, "1.1.1", name), body) for name, body in files.items()}
    configs = demo.write_demo_configs("1.1.1", second)
    versions = load_config_dir(configs).manifests[demo.MODEL].versions
    assert list(versions) == ["1.0.0", "1.1.0", "1.1.1"]
    assert versions["1.1.0"].notes == "pinned by hand"


def test_the_fail_scenarios_drifted_eval_data_fails_data_check_on_tenure_alone(files, tmp_path):
    """`make demo-fail`: the drifted eval data still meets its contract; only the drift check can stop it."""
    from tasks.preflight import local_gate_inputs

    (tmp_path / "train.parquet").write_bytes(files["train.parquet"])
    (tmp_path / "eval.parquet").write_bytes(demo.drift(files["eval.parquet"]))
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(demo.example_contract("train")))
    config = load_config_dir(demo.REPO / "configs").policies["high"].gate("data_check")
    assert config is not None
    inputs = local_gate_inputs(datasets={"train": tmp_path / "train.parquet", "eval": tmp_path / "eval.parquet"},
                               every_contract=contract, evidence_dir=tmp_path / "evidence")
    result = run_gate("data_check", inputs, config.config)
    assert result.status is Status.FAIL
    failed = {c.id for c in result.checks if c.status is Status.FAIL}
    assert failed and all(check.endswith(":tenure_months") for check in failed), failed
    assert "contract:eval" not in failed and not [c for c in failed if c.startswith("contract")]

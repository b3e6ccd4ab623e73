"""The demo's pieces that need no server: its data meets the example contract, and the manifest it
writes validates and points data_check at the clearance bucket."""

from __future__ import annotations

import hashlib

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
    assert set(datasets) == {"train", "eval"}
    bucket = Settings().bucket
    for role, ref in datasets.items():
        assert ref.uri == f"candidates/{demo.MODEL}/{version}/{role}.parquet"  # as in the example manifest
        assert ref.sha256 == hashlib.sha256(files[f"{role}.parquet"]).hexdigest()
        assert ref.contract == demo.example_contract(role)
        # the flow locates a key without a scheme in the clearance bucket (tasks/datasets.py)
        assert split_uri(ref.uri, Settings()) == ("s3", f"{bucket}/{ref.uri}")
    raw = yaml.safe_load((configs / "models" / f"{demo.MODEL}.yaml").read_text())
    assert raw["risk_tier"] == "high" and load_config_dir(configs).policies["high"].gate("data_check")


def test_the_demo_data_passes_data_check_under_the_high_tier(files, tmp_path):
    """What the promotion in `make demo` runs, with the datasets local instead of in the bucket."""
    from tasks.preflight import local_gate_inputs

    for name in ("train.parquet", "eval.parquet"):
        (tmp_path / name).write_bytes(files[name])
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(demo.example_contract("train")))
    config = load_config_dir(demo.REPO / "configs").policies["high"].gate("data_check")
    assert config is not None
    inputs: GateInputs = local_gate_inputs(datasets={"train": tmp_path / "train.parquet",
                                                     "eval": tmp_path / "eval.parquet"},
                                           every_contract=contract, evidence_dir=tmp_path / "evidence")
    result = run_gate("data_check", inputs, config.config)
    assert result.status is Status.PASS, result.problems()
    ids = {c.id for c in result.checks}
    assert {"label_balance:eval", "psi:eval:region", "ks:eval:tenure_months", "digest:train"} <= ids
    assert "reference" not in ids  # train is the reference: require_reference is met, drift is measured


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

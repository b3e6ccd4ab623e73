"""The data_check gate inside a real promotion: datasets in SeaweedFS, evidence files uploaded."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.integration.promotion_kit import POLICY_HIGH, find_run, finish, make_candidate, start_direct_run

pytestmark = pytest.mark.integration




def parquet(values: np.ndarray) -> bytes:
    table = pa.table({"id": np.arange(len(values)), "score": values})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def with_datasets(s3, cand, current: np.ndarray) -> None:
    """Upload reference and eval data and add them (with a contract) to the candidate's manifest."""
    rng = np.random.default_rng(3)
    keys = {"reference": f"candidates/{cand.model}/data/reference.parquet",
            "eval": f"candidates/{cand.model}/data/eval.parquet"}
    s3.put_if_absent(keys["reference"], parquet(rng.normal(0, 1, 5000)))
    s3.put_if_absent(keys["eval"], parquet(current))
    path = cand.config_dir / "models" / f"{cand.model}.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["versions"]["1.0.0"]["datasets"] = [
        {"role": "reference", "uri": keys["reference"]},
        {"role": "eval", "uri": keys["eval"],
         "contract": {"min_rows": 100, "key": ["id"], "columns": {"score": {"type": "float", "max_null_rate": 0}}}},
    ]
    path.write_text(yaml.safe_dump(manifest))


def policy_with_data_check():
    policy = copy.deepcopy(POLICY_HIGH)
    policy["gates"].append({"id": "data_check", "mode": "blocking", "config": {}})
    return policy


def test_dry_run_with_clean_data_passes_and_uploads_evidence(s3, tmp_path):
    cand = make_candidate(tmp_path, s3, policy=policy_with_data_check())
    with_datasets(s3, cand, np.random.default_rng(4).normal(0, 1, 3000))
    proc = start_direct_run(cand, "1.0.0", dry_run=True, log=tmp_path / "run.log")
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
    run_id = find_run(cand.model, "1.0.0")
    prefix = f"evidence/{cand.model}/1.0.0/{run_id}/"
    result = json.loads(s3.get_bytes(prefix + "gate-data_check.json")[0])
    assert result["status"] == "pass", [c for c in result["checks"] if c["status"] != "pass"]
    uploaded = set(s3.list_keys(prefix))
    for item in result["evidence"]:
        assert prefix + item["name"] in uploaded
        assert s3.sha256_of(prefix + item["name"])[0] == item["sha256"]


def test_drifted_data_stops_the_promotion(s3, tmp_path):
    cand = make_candidate(tmp_path, s3, policy=policy_with_data_check())
    with_datasets(s3, cand, np.random.default_rng(5).normal(1.5, 1, 3000))  # shifted: PSI far above 0.25
    proc = start_direct_run(cand, "1.0.0")
    assert finish(proc) != 0
    run_id = find_run(cand.model, "1.0.0")
    result = json.loads(s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run_id}/gate-data_check.json")[0])
    assert result["status"] == "fail"
    assert any(c["id"].startswith("psi:eval") and c["status"] == "fail" for c in result["checks"])

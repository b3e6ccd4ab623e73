"""data_check on a real SeaweedFS: an S3-hosted dataset gives the same result as its local copy."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clearance.config.schema import DatasetRef
from clearance.settings import Settings
from gates.base import GateInputs, GateResult, Status, run_gate
from tasks.datasets import filesystem_spec, locate_dataset

pytestmark = pytest.mark.integration

CONTRACT = {
    "columns": {"id": {"type": "int", "nullable": False}, "x": {"type": "float", "min": -3, "max": 3},
                "c": {"type": "string", "categories": ["a", "b", "c"]}},
    "key": ["id"],
    "label": {"column": "label", "values": [0, 1]},
}


def tables() -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(9)
    n = 30_000
    ids = np.arange(n)
    ids[::1000] = 0
    cur = pa.table({"id": ids, "x": rng.normal(0.2, 1.1, n), "c": rng.choice(["a", "b", "c", "zz"], n),
                    "label": rng.integers(0, 3, n)})
    ref = pa.table({"id": np.arange(n), "x": rng.normal(0, 1, n), "c": rng.choice(["a", "b", "c"], n),
                    "label": rng.integers(0, 2, n)})
    return cur, ref


def run(refs: list[DatasetRef], settings: Settings, evidence: Path) -> GateResult:
    locators = {r.role: locate_dataset(r, settings) for r in refs}
    inputs = GateInputs(model="m", version="1",
                        manifest={"versions": {"1": {"datasets": [r.model_dump(mode="json") for r in refs]}}},
                        datasets=locators, extra={"evidence_dir": str(evidence), "now": "2025-06-01T00:00:00+00:00"})
    return run_gate("data_check", inputs, {})


def essence(result: GateResult) -> list[tuple[str, str, Any]]:
    return [(c.id, c.status.value, c.observed) for c in result.checks]


def test_s3_dataset_gives_the_same_result_as_the_local_copy(s3_service: Any, tmp_path: Path) -> None:
    settings = Settings()
    fs = filesystem_spec(settings).to_pyarrow()
    cur, ref = tables()
    local = tmp_path / "local"
    (local / "current").mkdir(parents=True)
    pq.write_table(cur.slice(0, 12_000), local / "current" / "part-0.parquet")
    pq.write_table(cur.slice(12_000), local / "current" / "part-1.parquet")
    pq.write_table(ref, local / "reference.parquet")
    prefix = f"tests/data_check-{uuid.uuid4().hex[:8]}"
    for path in sorted(local.rglob("*.parquet")):
        with fs.open_output_stream(f"{settings.bucket}/{prefix}/{path.relative_to(local)}") as out:
            out.write(path.read_bytes())

    def refs(base_cur: str, base_ref: str, pins: dict[str, str] | None = None) -> list[DatasetRef]:
        return [DatasetRef(role="reference", uri=base_ref, sha256=(pins or {}).get("reference")),
                DatasetRef(role="eval", uri=base_cur, contract=CONTRACT, sha256=(pins or {}).get("eval"))]

    local_result = run(refs(str(local / "current"), str(local / "reference.parquet")), settings, tmp_path / "ev1")
    pins = local_result.input_digests
    assert set(pins) == {"eval", "reference"}
    s3_uri = run(refs(f"s3://{settings.bucket}/{prefix}/current", f"s3://{settings.bucket}/{prefix}/reference.parquet",
                      pins), settings, tmp_path / "ev2")
    bucket_key = run(refs(f"{prefix}/current/", f"{prefix}/reference.parquet", pins), settings, tmp_path / "ev3")

    expected = [e for e in essence(local_result) if not e[0].startswith("digest:")]
    for result in (s3_uri, bucket_key):
        assert [e for e in essence(result) if not e[0].startswith("digest:")] == expected
        assert result.input_digests == pins
        assert {c.id: c.status for c in result.checks if c.id.startswith("digest:")} == {
            "digest:eval": Status.PASS, "digest:reference": Status.PASS}
        assert result.status is local_result.status is Status.FAIL
    checks = {c.id: c for c in s3_uri.checks}
    assert checks["unique_key:eval"].observed == 30  # rows 0, 1000, …, 29000 all have id 0
    assert checks["categories:eval:c"].observed == int(np.sum(cur.column("c").to_numpy(zero_copy_only=False) == "zz"))
    assert checks["readable:eval"].status is Status.PASS
    ev_local = {e.name: e.sha256 for e in local_result.evidence}
    assert {e.name: e.sha256 for e in s3_uri.evidence} == ev_local


def test_missing_s3_dataset_is_a_failed_check(s3_service: Any, tmp_path: Path) -> None:
    settings = Settings()
    ref = DatasetRef(role="eval", uri=f"s3://{settings.bucket}/tests/no-such-{uuid.uuid4().hex}.parquet")
    result = run([ref], settings, tmp_path)
    check = {c.id: c for c in result.checks}["readable:eval"]
    assert check.status is Status.FAIL and check.observed == "not_found"


def test_wrong_credentials_are_an_error_not_a_pass(s3_service: Any, tmp_path: Path) -> None:
    settings = Settings().model_copy(update={"s3_secret_access_key": "wrong"})
    ref = DatasetRef(role="eval", uri=f"s3://{Settings().bucket}/tests/whatever.parquet")
    result = run([ref], settings, tmp_path)
    assert result.status in (Status.ERROR, Status.FAIL)
    assert {c.id: c for c in result.checks}["readable:eval"].status is not Status.PASS

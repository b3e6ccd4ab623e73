"""data_check on bad inputs: each kind of unusable file or column is told apart and reported, never left out.

- a file that is not Parquet, a truncated one or a CSV named ``.parquet`` is ``unreadable``, a missing
  one ``not_found`` — decided by the exception's type, not by its text ("magic bytes not found");
- drift against an empty, unreadable or missing-file reference, or an all-null reference column,
  appears on every compared column as an ``error`` check with the reason;
- a column whose type differs in kind from the reference's (int codes vs string labels) fails its
  ``dtype`` check and gets no drift number.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from clearance.config.schema import DatasetRef
from clearance.settings import Settings
from gates.base import CheckResult, GateInputs, GateResult, Status, run_gate
from gates.data_check.reader import classify
from tasks.datasets import locate_dataset


def gate(tmp_path: Path, datasets: dict[str, tuple[Path, dict[str, Any]]],
         config: dict[str, Any] | None = None) -> GateResult:
    """Run the gate the way the flow does: manifest refs → locate_dataset → run_gate."""
    refs = [DatasetRef(role=role, uri=str(path), contract=contract) for role, (path, contract) in datasets.items()]
    manifest = {"versions": {"1": {"datasets": [r.model_dump(mode="json") for r in refs]}}}
    inputs = GateInputs(model="m", version="1", manifest=manifest, datasets={r.role: locate_dataset(r) for r in refs},
                        extra={"evidence_dir": str(tmp_path / "evidence"), "now": "2025-06-01T12:00:00+00:00"})
    return run_gate("data_check", inputs, config or {})


def by_id(result: GateResult) -> dict[str, CheckResult]:
    return {c.id: c for c in result.checks}


def no_tracebacks(result: GateResult) -> None:
    for c in result.checks:
        assert "Traceback" not in (c.message or "") and 'File "' not in (c.message or ""), c


def tables(n: int = 2_000, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    ref = pa.table({"x": rng.normal(0, 1, n), "c": rng.choice(["a", "b", "c"], n)})
    cur = pa.table({"x": rng.normal(0, 1, n), "c": rng.choice(["a", "b", "c"], n)})
    return ref, cur


def good_parquet(path: Path) -> Path:
    pq.write_table(tables()[0], path)
    return path


# --------------------------------------------------------------------------- unreadable vs not found


def text_file(path: Path) -> Path:
    path.write_text("id,age\nthis is a text file, not Parquet\n" * 20)
    return path


def truncated(path: Path) -> Path:
    whole = good_parquet(path.with_name("whole.parquet")).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # the first half: no footer, no closing magic bytes
    return path


def csv_named_parquet(path: Path) -> Path:
    pacsv.write_csv(tables()[0], path)
    return path


@pytest.mark.parametrize("make", [text_file, truncated, csv_named_parquet])
def test_a_file_that_is_not_parquet_is_unreadable_not_missing(tmp_path: Path, make: Any) -> None:
    path = make(tmp_path / "eval.parquet")
    result = gate(tmp_path, {"eval": (path, {})})
    check = by_id(result)["readable:eval"]
    # pyarrow says "Parquet magic bytes not found in footer": that is a file which exists and is not Parquet
    assert check.status is Status.FAIL and check.observed == "unreadable", check
    assert "eval" in check.message and str(path) in check.message and "unreadable" in check.message
    assert result.status is Status.FAIL
    no_tracebacks(result)


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    result = gate(tmp_path, {"eval": (path, {})})
    check = by_id(result)["readable:eval"]
    assert check.status is Status.FAIL and check.observed == "not_found", check
    assert "eval" in check.message and str(path) in check.message


def test_a_file_deleted_after_it_was_located_is_not_found(tmp_path: Path) -> None:
    """The reader's own failure (not the locator's) is classified too: FileNotFoundError → not_found."""
    path = good_parquet(tmp_path / "eval.parquet")
    ref = DatasetRef(role="eval", uri=str(path))
    locator = locate_dataset(ref)
    path.unlink()
    manifest = {"versions": {"1": {"datasets": [ref.model_dump(mode="json")]}}}
    result = run_gate("data_check", GateInputs(model="m", version="1", manifest=manifest, datasets={"eval": locator},
                                               extra={"evidence_dir": str(tmp_path / "ev")}), {})
    check = by_id(result)["readable:eval"]
    assert check.status is Status.FAIL and check.observed == "not_found", check


def test_a_corrupt_data_page_is_unreadable_when_its_column_is_read(tmp_path: Path) -> None:
    """A footer that parses over a corrupt (snappy) page: pyarrow raises a bare OSError, the file is there."""
    path = tmp_path / "eval.parquet"
    pq.write_table(pa.table({"x": np.random.default_rng(0).normal(size=50_000)}), path, compression="snappy")
    data = bytearray(path.read_bytes())
    for i in range(64, len(data) // 2):
        data[i] = (data[i] * 7 + 3) % 256
    path.write_bytes(bytes(data))
    result = gate(tmp_path, {"eval": (path, {})})
    checks = by_id(result)
    assert checks["readable:eval"].status is Status.PASS  # the footer is intact
    read = checks["read:eval:x"]
    assert read.status is Status.ERROR and "unreadable" in read.message, read
    assert "'x'" in read.message and str(path) in read.message and "eval" in read.message
    no_tracebacks(result)


class _DeadStore:
    """A filesystem that cannot be reached: every lookup fails."""

    def get_file_info(self, paths: Any) -> Any:
        raise OSError("AWS Error NETWORK_CONNECTION during HeadObject operation: key not found in cache")


def test_classify_uses_the_exception_type_and_the_store_never_the_text(tmp_path: Path) -> None:
    here = good_parquet(tmp_path / "here.parquet")
    local = pafs.LocalFileSystem()
    # the text says "not found" in each of these; only the type (and the store) decides
    assert classify(pa.ArrowInvalid("Parquet magic bytes not found in footer")) == "unreadable"
    assert classify(OSError("Corrupt snappy compressed data, not found"), local, [str(here)]) == "unreadable"
    assert classify(OSError("unexpected end of stream"), local, [str(tmp_path / "gone.parquet")]) == "not_found"
    assert classify(OSError("key not found"), _DeadStore(), ["bucket/key.parquet"]) == "unreachable"
    assert classify(FileNotFoundError("no such thing")) == "not_found"
    assert classify(OSError(errno.ENOENT, "Path does not exist 'bucket/key.parquet'")) == "not_found"
    assert classify(ConnectionRefusedError("refused")) == "unreachable"


def test_locate_dataset_classifies_an_unreachable_store_by_type() -> None:
    settings = Settings().model_copy(update={"s3_endpoint_url": "http://127.0.0.1:9", "s3_access_key_id": "a",
                                             "s3_secret_access_key": "b"})
    locator = locate_dataset(DatasetRef(role="eval", uri="s3://bucket/not/found.parquet"), settings)
    assert locator.error_kind == "unreachable", locator.error
    assert locator.error is not None and "s3://bucket/not/found.parquet" in locator.error


# --------------------------------------------------------------------------- drift that cannot be measured

DRIFT_IDS = ("psi:eval:x", "ks:eval:x", "psi:eval:c")


def empty_reference(path: Path) -> Path:
    pq.write_table(tables()[0].slice(0, 0), path)
    return path


def missing_reference(path: Path) -> Path:
    return path


@pytest.mark.parametrize(("make", "reason"), [(empty_reference, "has 0 rows"), (text_file, "is unreadable"),
                                              (truncated, "is unreadable"), (missing_reference, "was not found")])
def test_drift_against_an_unusable_reference_is_an_error_on_every_compared_column(
        tmp_path: Path, make: Any, reason: str) -> None:
    ref_path = make(tmp_path / "reference.parquet")
    cur_path = tmp_path / "eval.parquet"
    pq.write_table(tables()[1], cur_path)
    result = gate(tmp_path, {"reference": (ref_path, {}), "eval": (cur_path, {})})
    checks = by_id(result)
    for cid in DRIFT_IDS:
        check = checks[cid]
        assert check.status is Status.ERROR and check.observed is None, check
        assert reason in check.message and str(ref_path) in check.message and "'reference'" in check.message
        assert str(cur_path) in check.message and cid.split(":")[2] in check.message
    assert checks["psi:eval:x"].threshold == {"warn": 0.1, "fail": 0.25}  # the levels that would have applied
    assert "ks:eval:c" not in checks  # categorical: PSI only
    assert not any(k.startswith("eval.") and k.endswith((".psi", ".ks")) for k in result.metrics)
    assert result.status is Status.ERROR
    no_tracebacks(result)


def test_a_missing_reference_still_just_skips_drift(tmp_path: Path) -> None:
    cur_path = tmp_path / "eval.parquet"
    pq.write_table(tables()[1], cur_path)
    checks = by_id(gate(tmp_path, {"eval": (cur_path, {})}))
    assert checks["reference"].status is Status.SKIPPED
    assert not [cid for cid in checks if cid.startswith(("psi:", "ks:"))]


@pytest.mark.parametrize("values", [pa.array([None] * 500, pa.float64()), pa.array([np.nan] * 500),
                                    pa.nulls(500)], ids=["nulls", "nan", "null-type"])
def test_an_all_null_reference_column_is_an_error(tmp_path: Path, values: pa.Array) -> None:
    rng = np.random.default_rng(1)
    pq.write_table(pa.table({"x": values, "y": rng.normal(size=500)}), tmp_path / "r.parquet")
    pq.write_table(pa.table({"x": rng.normal(size=500), "y": rng.normal(size=500)}), tmp_path / "e.parquet")
    result = gate(tmp_path, {"reference": (tmp_path / "r.parquet", {}), "eval": (tmp_path / "e.parquet", {})})
    checks = by_id(result)
    for cid in ("psi:eval:x", "ks:eval:x"):
        assert checks[cid].status is Status.ERROR, checks[cid]
        assert "every value of the column is null" in checks[cid].message
        assert str(tmp_path / "r.parquet") in checks[cid].message and "eval" in checks[cid].message
    assert checks["psi:eval:y"].status is Status.PASS  # the other column is still measured
    assert "eval.x.psi" not in result.metrics


def test_an_all_null_current_column_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pq.write_table(pa.table({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)}), tmp_path / "r.parquet")
    pq.write_table(pa.table({"x": pa.array([None] * 500, pa.float64()), "c": pa.array([None] * 500, pa.string())}),
                   tmp_path / "e.parquet")
    checks = by_id(gate(tmp_path, {"reference": (tmp_path / "r.parquet", {}), "eval": (tmp_path / "e.parquet", {})}))
    for cid in ("psi:eval:x", "ks:eval:x", "psi:eval:c"):
        assert checks[cid].status is Status.ERROR and "every value of the column is null" in checks[cid].message


# --------------------------------------------------------------------------- type mismatch


@pytest.mark.parametrize("contract", [{"columns": {"c": {"type": "category"}}}, {}], ids=["category", "plain"])
def test_int_codes_vs_string_labels_is_a_failed_dtype_check_and_no_drift_number(
        tmp_path: Path, contract: dict[str, Any]) -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, 1_000)
    pq.write_table(pa.table({"c": codes, "x": rng.normal(size=1_000)}), tmp_path / "r.parquet")
    labels = np.array(["low", "mid", "high"])[rng.integers(0, 3, 1_000)]
    pq.write_table(pa.table({"c": labels, "x": rng.normal(size=1_000)}), tmp_path / "e.parquet")
    result = gate(tmp_path, {"reference": (tmp_path / "r.parquet", contract),
                             "eval": (tmp_path / "e.parquet", contract)})
    checks = by_id(result)
    dtype = checks["dtype:eval:c"]
    assert dtype.status is Status.FAIL and dtype.observed == "string" and dtype.threshold == "int64", dtype
    assert "int64" in dtype.message and "string" in dtype.message and "'reference'" in dtype.message
    assert str(tmp_path / "e.parquet") in dtype.message and str(tmp_path / "r.parquet") in dtype.message
    psi = checks["psi:eval:c"]
    assert psi.status is Status.SKIPPED and psi.observed is None and "type differs" in psi.message, psi
    # a plain int reference column is numeric: its KS is skipped too; a category has no KS
    assert ("ks:eval:c" in checks) == (not contract)
    assert all(checks[cid].status is Status.SKIPPED for cid in ("psi:eval:c", "ks:eval:c") if cid in checks)
    assert "eval.c.psi" not in result.metrics and "eval.c.ks" not in result.metrics
    assert checks["dtype:eval:x"].status is Status.PASS and checks["psi:eval:x"].observed is not None
    assert result.status is Status.FAIL
    no_tracebacks(result)


def test_int_vs_float_of_the_same_column_is_not_a_mismatch(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pq.write_table(pa.table({"n": rng.integers(0, 50, 2_000)}), tmp_path / "r.parquet")
    pq.write_table(pa.table({"n": rng.integers(0, 50, 2_000).astype(np.float64)}), tmp_path / "e.parquet")
    result = gate(tmp_path, {"reference": (tmp_path / "r.parquet", {}), "eval": (tmp_path / "e.parquet", {})})
    checks = by_id(result)
    assert checks["dtype:eval:n"].status is Status.PASS
    assert checks["dtype:eval:n"].observed == "double" and checks["dtype:eval:n"].threshold == "int64"
    assert checks["psi:eval:n"].status is Status.PASS and checks["ks:eval:n"].status is Status.PASS
    assert isinstance(checks["psi:eval:n"].observed, float)

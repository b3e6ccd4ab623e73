"""The data_check gate on small hand-built datasets with known answers, and on every kind of bad input."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from clearance.config.schema import DatasetRef
from gates.base import GateInputs, GateResult, Status, parse_gate_config, run_gate
from gates.data_check.models import DataCheckConfig, DatasetLocator, Levels, dataset_digest
from tasks.datasets import locate_dataset

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def write(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gate(tmp_path: Path, datasets: dict[str, tuple[Path, dict[str, Any]]], config: dict[str, Any] | None = None,
         pins: dict[str, str] | None = None) -> GateResult:
    """Run the gate the way the flow does: manifest refs → locate_dataset → run_gate."""
    refs, locators = [], {}
    for role, (path, contract) in datasets.items():
        ref = DatasetRef(role=role, uri=str(path), contract=contract, sha256=(pins or {}).get(role))
        refs.append(ref.model_dump(mode="json"))
        locators[role] = locate_dataset(ref)
    manifest = {"versions": {"1": {"datasets": refs}}}
    inputs = GateInputs(model="m", version="1", manifest=manifest, datasets=locators,
                        extra={"evidence_dir": str(tmp_path / "evidence"), "now": NOW.isoformat()})
    return run_gate("data_check", inputs, config or {})


def by_id(result: GateResult) -> dict[str, Any]:
    return {c.id: c for c in result.checks}


# --------------------------------------------------------------------------- a hand-built dataset

HAND = pa.table({
    "id": [1, 2, 3, 3, 5, 6, 6, 6],
    "age": [30, 150, None, 40, -1, 50, 60, 70],
    "country": ["DE", "FR", "XX", "DE", None, "US", "FR", "YY"],
    "label": [0, 1, 1, None, 2, 0, 0, 0],
    "ts": pa.array([datetime(2025, 5, 30, tzinfo=UTC)] * 7 + [datetime(2025, 5, 31, tzinfo=UTC)]),
})
HAND_CONTRACT = {
    "columns": {
        "id": {"type": "int", "nullable": False},
        "age": {"type": "int", "min": 0, "max": 120, "max_null_rate": 0.1},
        "country": {"type": "string", "categories": ["DE", "FR", "US"], "max_null_rate": 0.2},
    },
    "key": ["id"],
    "label": {"column": "label", "values": [0, 1], "min_class_share": 0.3},
    "event_time": {"column": "ts", "max_age": "1d"},
    "min_rows": 5,
}


def test_every_contract_check_on_a_hand_built_dataset(tmp_path: Path) -> None:
    path = write(tmp_path / "eval.parquet", HAND)
    result = gate(tmp_path, {"eval": (path, HAND_CONTRACT)})
    checks = by_id(result)
    expected = {
        "readable:eval": (Status.PASS, "readable"),
        "rows:eval": (Status.PASS, 8),
        "null_rate:eval:id": (Status.PASS, 0.0),
        "null_rate:eval:age": (Status.FAIL, 0.125),          # 1 of 8 > 0.1
        "range:eval:age": (Status.FAIL, 2),                  # 150 and -1
        "categories:eval:country": (Status.FAIL, 2),         # XX, YY (null is not a category violation)
        "null_rate:eval:country": (Status.PASS, 0.125),
        "unique_key:eval": (Status.FAIL, 5),                 # 3,3 and 6,6,6
        "label_nulls:eval": (Status.FAIL, 1),
        "label_values:eval": (Status.FAIL, 1),               # the 2
        "label_balance:eval": (Status.FAIL, 1 / 7),          # class 1: 2 of 7 labelled rows... see below
        "freshness:eval": (Status.FAIL, str(timedelta(days=1, hours=12))),
        "type:eval:age": (Status.PASS, "int64"),
    }
    # label shares over the 7 labelled rows: 0 → 4/7, 1 → 2/7, 2 → 1/7; classes judged: [0, 1] → min 2/7
    expected["label_balance:eval"] = (Status.FAIL, 2 / 7)
    for cid, (status, observed) in expected.items():
        assert checks[cid].status is status, (cid, checks[cid])
        assert checks[cid].observed == pytest.approx(observed) if isinstance(observed, float) else \
            checks[cid].observed == observed, (cid, checks[cid].observed)
    assert result.status is Status.FAIL
    # offending keys name the rows (by the key column)
    assert "offending keys" in checks["range:eval:age"].message and "2, 5" in checks["range:eval:age"].message
    table = json.loads((tmp_path / "evidence" / "data_check_columns.json").read_text())
    assert table["offending_keys"]["range:eval:age"] == [2, 5]
    assert table["offending_keys"]["unique_key:eval"] == [3, 3, 6, 6, 6]
    assert table["offending_keys"]["categories:eval:country"] == [3, 6]
    row = next(r for r in table["columns"] if r["column"] == "age")
    assert row["nulls"] == 1 and row["range_violations"] == 2 and row["min"] == -1 and row["max"] == 150
    assert result.metrics["eval.age.range_violations"] == 2


def test_clean_data_passes(tmp_path: Path) -> None:
    clean = pa.table({"id": [1, 2, 3, 4, 5, 6], "age": [30, 40, 50, 60, 70, 80],
                      "country": ["DE", "FR", "US", "DE", "FR", "US"], "label": [0, 1, 0, 1, 0, 1],
                      "ts": pa.array([datetime(2025, 6, 1, tzinfo=UTC)] * 6)})
    path = write(tmp_path / "eval.parquet", clean)
    result = gate(tmp_path, {"eval": (path, HAND_CONTRACT)}, pins={"eval": sha(path)})
    assert result.status is Status.PASS, result.problems()
    assert result.input_digests == {"eval": sha(path)}


def test_key_offenders_are_capped(tmp_path: Path) -> None:
    path = write(tmp_path / "eval.parquet", pa.table({"id": [7] * 50}))
    result = gate(tmp_path, {"eval": (path, {"key": ["id"]})}, config={"max_offending_keys": 3})
    check = by_id(result)["unique_key:eval"]
    assert check.observed == 50 and check.message.endswith("7, 7, 7")


def test_multi_column_and_string_keys(tmp_path: Path) -> None:
    t = pa.table({"a": ["x", "x", "y", "y", None, None], "b": [1, 1, 1, 2, 3, 3]})
    path = write(tmp_path / "eval.parquet", t)
    assert by_id(gate(tmp_path, {"eval": (path, {"key": ["a", "b"]})}))["unique_key:eval"].observed == 2
    assert by_id(gate(tmp_path, {"eval": (path, {"key": ["a"]})}))["unique_key:eval"].observed == 4


# --------------------------------------------------------------------------- drift


def drift_tables(shift: float, n: int = 5_000, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    ref = pa.table({"x": rng.normal(0, 1, n), "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})
    cur = pa.table({"x": rng.normal(shift, 1, n),
                    "c": rng.choice(["a", "b", "c", "new"], n,
                                    p=[0.5, 0.2, 0.2, 0.1] if shift else [0.5, 0.3, 0.2, 0])})
    return ref, cur


def test_drift_levels(tmp_path: Path) -> None:
    ref, cur = drift_tables(0.0)
    same = gate(tmp_path, {"reference": (write(tmp_path / "r.parquet", ref), {}),
                           "eval": (write(tmp_path / "e.parquet", cur), {})})
    assert {c.id: c.status for c in same.checks if c.id.startswith(("psi", "ks"))} == {
        "psi:eval:x": Status.PASS, "ks:eval:x": Status.PASS, "psi:eval:c": Status.PASS}
    ref, cur = drift_tables(1.0)
    moved = gate(tmp_path, {"reference": (write(tmp_path / "r2.parquet", ref), {}),
                            "eval": (write(tmp_path / "e2.parquet", cur), {})})
    checks = by_id(moved)
    assert checks["psi:eval:x"].status is Status.FAIL and checks["ks:eval:x"].status is Status.FAIL
    # categorical PSI by hand: reference categories a, b, c plus one bin for unseen categories
    rc = ref.column("c").to_numpy(zero_copy_only=False)
    cc = cur.column("c").to_numpy(zero_copy_only=False)
    r = np.array([np.mean(rc == k) for k in "abc"] + [0.0])
    c = np.array([np.mean(cc == k) for k in "abc"] + [np.mean(~np.isin(cc, list("abc")))])
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    assert checks["psi:eval:c"].observed == pytest.approx(np.sum((c - r) * np.log(c / r)), abs=1e-9)
    assert checks["psi:eval:c"].status is Status.FAIL  # 10% of rows in an unseen category
    assert "1 categories unseen in the reference" in checks["psi:eval:c"].message
    table = json.loads((tmp_path / "evidence" / "data_check_columns.json").read_text())
    row = next(r for r in table["columns"] if r["dataset"] == "eval" and r["column"] == "c")
    assert row["unseen_categories"] == 1 and row["unseen_rows"] == np.count_nonzero(
        cur.column("c").to_numpy(zero_copy_only=False) == "new")
    png = next(e for e in moved.evidence if e.name.endswith(".png"))
    assert sha(tmp_path / "evidence" / png.name) == png.sha256
    assert (tmp_path / "evidence" / png.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_column_levels_and_contract_only_tightens(tmp_path: Path) -> None:
    ref, cur = drift_tables(0.25)
    r, e = write(tmp_path / "r.parquet", ref), write(tmp_path / "e.parquet", cur)
    loose = {"columns": {"x": {"psi": {"warn": 5, "fail": 9}, "ks": {"warn": 5, "fail": 9}}}}
    assert by_id(gate(tmp_path, {"reference": (r, {}), "eval": (e, {})}, loose))["ks:eval:x"].status is Status.PASS
    # the manifest's contract tightens the column below the policy's levels …
    tight = {"columns": {"x": {"ks": {"fail": 0.01}}}}
    assert by_id(gate(tmp_path, {"reference": (r, {}), "eval": (e, tight)}, loose))["ks:eval:x"].status is Status.FAIL
    # … but a looser contract level cannot loosen the policy's
    lax = {"columns": {"x": {"ks": {"warn": 50, "fail": 90}}}}
    assert by_id(gate(tmp_path, {"reference": (r, {}), "eval": (e, lax)}))["ks:eval:x"].status is Status.WARN


def test_bounded_mode_reports_an_upper_limit(tmp_path: Path) -> None:
    ref, cur = drift_tables(0.05, n=60_000)
    r, e = write(tmp_path / "r.parquet", ref), write(tmp_path / "e.parquet", cur)
    exact = by_id(gate(tmp_path, {"reference": (r, {}), "eval": (e, {})}))["ks:eval:x"].observed
    bounded = by_id(gate(tmp_path, {"reference": (r, {}), "eval": (e, {})},
                         {"ks_mode": "bounded", "fine_bins": 256}))["ks:eval:x"].observed
    assert bounded >= exact
    assert bounded - exact <= 2 / 256 + 1e-9 or bounded - exact < 0.05


def test_no_reference_skips_drift_unless_required(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", HAND)
    assert by_id(gate(tmp_path, {"eval": (path, {})}))["reference"].status is Status.SKIPPED
    assert by_id(gate(tmp_path, {"eval": (path, {})}, {"require_reference": True}))["reference"].status is Status.FAIL


def test_train_is_the_fallback_reference(tmp_path: Path) -> None:
    ref, cur = drift_tables(1.0)
    result = gate(tmp_path, {"train": (write(tmp_path / "t.parquet", ref), {}),
                             "production_sample": (write(tmp_path / "p.parquet", cur), {})})
    assert by_id(result)["psi:production_sample:x"].status is Status.FAIL


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    result = gate(tmp_path, {"eval": (tmp_path / "nope.parquet", HAND_CONTRACT)})
    check = by_id(result)["readable:eval"]
    assert check.status is Status.FAIL and check.observed == "not_found" and "eval" in check.message
    assert result.status is Status.FAIL


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all PAR1")
    check = by_id(gate(tmp_path, {"eval": (path, {})}))["readable:eval"]
    assert check.status is Status.FAIL and check.observed == "unreadable" and "bad.parquet" in check.message


def test_missing_column_and_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", pa.table({"age": ["thirty", "forty"]}))
    contract = {"columns": {"age": {"type": "int", "min": 0}, "income": {"type": "float"}}}
    result = gate(tmp_path, {"eval": (path, contract)})
    checks = by_id(result)
    assert checks["column:eval:income"].status is Status.FAIL and "income" in checks["column:eval:income"].message
    assert checks["type:eval:age"].status is Status.FAIL and checks["type:eval:age"].observed == "string"
    assert "range:eval:age" not in checks  # value checks of a wrongly typed column are not attempted
    assert result.status is Status.FAIL


def test_empty_dataset(tmp_path: Path) -> None:
    ref, _ = drift_tables(0.0)
    empty = pa.table({"x": pa.array([], pa.float64()), "c": pa.array([], pa.string())})
    result = gate(tmp_path, {"reference": (write(tmp_path / "r.parquet", ref), {}),
                             "eval": (write(tmp_path / "e.parquet", empty), {"columns": {"x": {"nullable": False}}})})
    checks = by_id(result)
    assert checks["rows:eval"].status is Status.FAIL and checks["rows:eval"].observed == 0
    assert "empty" in checks["rows:eval"].message
    assert result.status is Status.FAIL


def test_contract_naming_a_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", pa.table({"x": [1.0, 2.0]}))
    contract = {"key": ["customer_id"], "label": {"column": "target"}, "event_time": {"column": "ts", "max_age": "1d"}}
    checks = by_id(gate(tmp_path, {"eval": (path, contract)}))
    for col in ("customer_id", "target", "ts"):
        check = checks[f"contract_column:eval:{col}"]
        assert check.status is Status.FAIL and col in check.message and "eval" in check.message


def test_invalid_contract_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", pa.table({"x": [1.0]}))
    check = by_id(gate(tmp_path, {"eval": (path, {"columns": {"x": {"type": "complex"}}})}))["contract:eval"]
    assert check.status is Status.ERROR and "columns.x.type" in check.message


def test_digest_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", pa.table({"x": [1.0]}))
    result = gate(tmp_path, {"eval": (path, {})}, pins={"eval": "0" * 64})
    check = by_id(result)["digest:eval"]
    assert check.status is Status.FAIL and check.observed == sha(path) and check.threshold == "0" * 64
    assert result.status is Status.FAIL
    assert by_id(gate(tmp_path, {"eval": (path, {})}, pins={"eval": sha(path)}))["digest:eval"].status is Status.PASS


def test_unlocated_dataset_is_an_error(tmp_path: Path) -> None:
    manifest = {"versions": {"1": {"datasets": [{"role": "eval", "uri": "s3://b/k.parquet"}]}}}
    result = run_gate("data_check", GateInputs(model="m", version="1", manifest=manifest), {})
    assert result.status is Status.ERROR and by_id(result)["dataset:eval"].status is Status.ERROR


def test_unreachable_store_is_an_error(tmp_path: Path) -> None:
    locator = DatasetLocator(role="eval", uri="s3://b/k.parquet", files=["b/k.parquet"],
                             filesystem={"kind": "s3", "endpoint_override": "http://127.0.0.1:9",
                                         "access_key": "a", "secret_key": "b"})
    manifest = {"versions": {"1": {"datasets": [{"role": "eval", "uri": "s3://b/k.parquet"}]}}}
    result = run_gate("data_check", GateInputs(model="m", version="1", manifest=manifest,
                                               datasets={"eval": locator}), {})
    assert result.status in (Status.ERROR, Status.FAIL)
    assert by_id(result)["readable:eval"].status is not Status.PASS


# --------------------------------------------------------------------------- inputs and config


def test_csv_and_prefix_of_many_files(tmp_path: Path) -> None:
    a, b = HAND.slice(0, 4), HAND.slice(4)
    write(tmp_path / "parts" / "part-0.parquet", a)
    write(tmp_path / "parts" / "part-1.parquet", b)
    csv_path = write(tmp_path / "e.csv", HAND.drop_columns(["ts"]))
    contract = {k: v for k, v in HAND_CONTRACT.items() if k != "event_time"}
    many = by_id(gate(tmp_path, {"eval": (tmp_path / "parts", contract)}))
    csv = by_id(gate(tmp_path, {"eval": (csv_path, contract)}))
    for cid in ("range:eval:age", "categories:eval:country", "unique_key:eval", "label_values:eval",
                "null_rate:eval:age"):
        assert many[cid].observed == csv[cid].observed == by_id(
            gate(tmp_path, {"eval": (write(tmp_path / "one.parquet", HAND), HAND_CONTRACT)}))[cid].observed, cid


def test_dataset_digest_of_files(tmp_path: Path) -> None:
    write(tmp_path / "p" / "a.parquet", HAND)
    write(tmp_path / "p" / "b.parquet", HAND)
    loc = locate_dataset(DatasetRef(role="eval", uri=str(tmp_path / "p")))
    assert loc.file_sha256 == {"a.parquet": sha(tmp_path / "p" / "a.parquet"),
                               "b.parquet": sha(tmp_path / "p" / "b.parquet")}
    assert loc.sha256 == dataset_digest(loc.file_sha256)
    single = locate_dataset(DatasetRef(role="eval", uri=str(tmp_path / "p" / "a.parquet")))
    assert single.sha256 == sha(tmp_path / "p" / "a.parquet")
    missing = locate_dataset(DatasetRef(role="eval", uri=str(tmp_path / "nothing")))
    assert missing.error_kind == "not_found"


def test_config_tighten_rules() -> None:
    schema = DataCheckConfig.model_json_schema()
    levels = schema["$defs"]["Levels"]["properties"]
    assert levels["warn"]["tighten"] == "lower" and levels["fail"]["tighten"] == "lower"
    assert schema["properties"]["require_digest"]["tighten"] == "higher"
    config = parse_gate_config("data_check", {"psi": {"warn": 0.05, "fail": 0.2}})
    assert isinstance(config, DataCheckConfig) and config.psi == Levels(warn=0.05, fail=0.2)
    assert config.levels("x", "psi", Levels(fail=0.1)) == Levels(warn=0.05, fail=0.1)


def test_evidence_is_deterministic(tmp_path: Path) -> None:
    ref, cur = drift_tables(0.5)
    sets = {"reference": (write(tmp_path / "r.parquet", ref), {}), "eval": (write(tmp_path / "e.parquet", cur), {})}
    first, second = gate(tmp_path, sets), gate(tmp_path, sets)
    assert [e.sha256 for e in first.evidence] == [e.sha256 for e in second.evidence]
    assert [c.model_dump() for c in first.checks] == [c.model_dump() for c in second.checks]


def _event_time_row(tmp_path: Path) -> dict[str, Any]:
    table = json.loads((tmp_path / "evidence" / "data_check_columns.json").read_text())
    return next(r for r in table["columns"] if r["column"] == "ts")


@pytest.mark.parametrize("unit", ["us", "ns", "date"])
def test_event_time_from_parquet_footers_equals_reading_it(tmp_path: Path, unit: str) -> None:
    """Freshness and the null rate of an event-time column come from row-group statistics when
    nothing else needs its values; the answer is the one a full read (CSV) gives."""
    rng = np.random.default_rng(3)
    n = 5_000
    micros = 1_748_600_000_000_000 + rng.integers(0, 86_400_000_000, n)
    ts = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    if unit == "ns":
        ts = ts.cast(pa.timestamp("ns", tz="UTC"))
    elif unit == "date":
        ts = ts.cast(pa.timestamp("us")).cast(pa.date32())
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, 40, replace=False)] = True
    ts = pa.compute.if_else(pa.array(mask), pa.nulls(n, ts.type), ts)
    table = pa.table({"id": np.arange(n), "ts": ts})
    parquet = tmp_path / "p" / "eval.parquet"
    parquet.parent.mkdir()
    pq.write_table(table, parquet, row_group_size=700)  # several row groups, the newest value in one of them
    contract = {"columns": {"ts": {"type": "timestamp" if unit != "date" else "date", "max_null_rate": 0.01}},
                "event_time": {"column": "ts", "max_age": "1d"}}
    from_footers = by_id(gate(tmp_path / "a", {"eval": (parquet, contract)}))
    assert _event_time_row(tmp_path / "a").get("source") == "parquet statistics"
    read = by_id(gate(tmp_path / "b", {"eval": (write(tmp_path / "eval.csv", table), contract)}))
    assert _event_time_row(tmp_path / "b").get("source") is None
    for cid in ("freshness:eval", "null_rate:eval:ts"):
        assert from_footers[cid].status == read[cid].status, cid
        assert from_footers[cid].observed == read[cid].observed, cid
    assert from_footers["null_rate:eval:ts"].observed == pytest.approx(40 / n)


def test_event_time_is_read_when_footers_cannot_answer(tmp_path: Path) -> None:
    """No statistics in the file, or a failed null check that wants its offending rows: the column is read."""
    table = pa.table({"id": [1, 2, 3, 4], "ts": pa.array([datetime(2025, 5, 31, tzinfo=UTC), None, None,
                                                            datetime(2025, 6, 1, tzinfo=UTC)])})
    contract = {"columns": {"ts": {"type": "timestamp", "max_null_rate": 0.1}}, "key": ["id"],
                "event_time": {"column": "ts", "max_age": "1d"}}
    no_stats = tmp_path / "nostats.parquet"
    pq.write_table(table, no_stats, write_statistics=False)
    checks = by_id(gate(tmp_path / "a", {"eval": (no_stats, contract)}))
    assert _event_time_row(tmp_path / "a").get("source") is None
    assert checks["freshness:eval"].status is Status.PASS
    assert checks["null_rate:eval:ts"].status is Status.FAIL
    with_stats = write(tmp_path / "stats.parquet", table)
    checks = by_id(gate(tmp_path / "b", {"eval": (with_stats, contract)}))
    assert _event_time_row(tmp_path / "b").get("source") is None  # read: the failed null check names rows
    assert "2, 3" in checks["null_rate:eval:ts"].message
    assert checks["freshness:eval"].observed == str(timedelta(hours=12))

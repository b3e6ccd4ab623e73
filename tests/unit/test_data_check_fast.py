"""The fast paths of data_check: scipy-free KS p-values, the fused column scan, threads, label drift."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import smirnov as scipy_smirnov
from scipy.stats import ks_2samp, kstwo

from clearance.config.schema import DatasetRef
from gates.base import GateInputs, GateResult, run_gate
from gates.data_check import ks, ksdist, stats
from gates.data_check.checks import duplicate_key_rows
from gates.data_check.scan import scan_numeric
from tasks.datasets import locate_dataset

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 1, tzinfo=UTC)

# n covers every branch of scipy's kolmogn: n <= 140 (Durbin matrix, Pomeranz, Smirnov), n <= 1e5
# (Durbin matrix vs Pelz-Good), larger n, and Smirnov's closed form above 1e6.
SIZES = [1, 2, 5, 37, 140, 141, 1000, 9999, 12000, 35294, 100000, 100001, 166667, 999999, 1000001, 1666667]
NXSQ = [0.05, 0.3, 0.754, 0.76, 1.0, 2.0, 2.19, 2.21, 3.0, 4.0, 4.1, 10.0, 17.0, 18.5, 50.0, 200.0, 369.0, 371.0]
# scipy's reference takes about a second per point just below n = 1e6: there only the points on either side
# of a branch boundary of kolmogn (n·x² near 0.754, 2.2, 18, 370) are compared.
NXSQ_BOUNDARIES = [0.754, 0.76, 2.19, 2.21, 17.0, 18.5, 369.0, 371.0]


@pytest.mark.parametrize("n", SIZES)
def test_kstwo_sf_matches_scipy(n: int) -> None:
    xs = [0.4 / n, 0.5 / n, 0.75 / n, 1.0 / n, 1.5 / n, 0.3, 0.5, 0.7, 1 - 1 / n, 0.999, 1.0]
    xs += [float(np.sqrt(v / n)) for v in (NXSQ_BOUNDARIES if 500_000 <= n < 1_000_000 else NXSQ)]
    for x in xs:
        if not 0 < x <= 1:
            continue
        assert ksdist.kstwo_sf(x, n) == pytest.approx(float(kstwo.sf(x, n)), abs=1e-12), (n, x)


@pytest.mark.parametrize("n", [2, 10, 141, 5000, 35294, 999999, 1000001])
def test_smirnov_matches_scipy(n: int) -> None:
    for v in [1.0, 30.0] if 500_000 <= n < 1_000_000 else [0.2, 1.0, 2.2, 5.0, 30.0, 300.0]:
        x = float(np.sqrt(v / n))
        if x < 1:
            assert ksdist.smirnov(n, x) == pytest.approx(float(scipy_smirnov(n, x)), abs=1e-12), (n, x)


def test_p_value_matches_ks_2samp_in_every_regime() -> None:
    rng = np.random.default_rng(3)
    for n, m, shift in [(20_000, 15_000, 0.0), (20_000, 15_000, 0.03), (20_000, 15_000, 0.3),
                        (400_000, 2_500_000, 0.002)]:
        cur, ref = rng.normal(shift, 1, n), rng.normal(0, 1, m)
        lo, hi = stats.fine_range(ref)
        got = ks.ks_from_histograms(stats.fine_histogram(cur, lo, hi), stats.fine_histogram(ref, lo, hi))
        want = ks_2samp(cur, ref, method="asymp")
        assert got.statistic == pytest.approx(want.statistic, abs=1e-12)
        assert got.p_value == pytest.approx(want.pvalue, abs=1e-9)


def test_the_gate_does_not_import_scipy_stats_or_matplotlib(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pq.write_table(pa.table({"x": rng.normal(0, 1, 20_000), "label": rng.integers(0, 2, 20_000)}),
                   tmp_path / "r.parquet")
    pq.write_table(pa.table({"x": rng.normal(0.5, 1, 30_000), "label": rng.integers(0, 2, 30_000)}),
                   tmp_path / "e.parquet")
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from clearance.config.schema import DatasetRef
from gates.base import GateInputs, run_gate
from tasks.datasets import locate_dataset
refs = [DatasetRef(role="reference", uri={str(tmp_path / "r.parquet")!r}),
        DatasetRef(role="eval", uri={str(tmp_path / "e.parquet")!r})]
inputs = GateInputs(model="m", version="1",
                    manifest={{"versions": {{"1": {{"datasets": [r.model_dump(mode="json") for r in refs]}}}}}},
                    datasets={{r.role: locate_dataset(r) for r in refs}},
                    extra={{"evidence_dir": {str(tmp_path / "ev")!r}}})
result = run_gate("data_check", inputs, {{}})
assert any(c.id == "ks:eval:x" for c in result.checks), result.checks
assert any(e.name.endswith(".png") for e in result.evidence)
print(sorted(m for m in sys.modules if m.startswith(("scipy.stats", "matplotlib"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- the fused scan


def chunked(values: np.ndarray, mask: np.ndarray | None, cuts: list[int]) -> pa.ChunkedArray:
    """A chunked float column with nulls, made of slices at odd offsets (validity bitmaps not byte-aligned)."""
    whole = pa.array(values, mask=mask)
    parts, start = [], 0
    for cut in cuts + [len(values)]:
        parts.append(whole.slice(start, cut - start))
        start = cut
    return pa.chunked_array(parts)


def test_scan_numeric_matches_numpy_with_nulls_nan_and_odd_chunks() -> None:
    rng = np.random.default_rng(7)
    n = 300_003
    values = rng.normal(0, 1, n)
    values[rng.choice(n, 500, replace=False)] = np.nan
    values[rng.choice(n, 300, replace=False)] = 50.0
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, 700, replace=False)] = True
    column = chunked(values, mask, [3, 70_001, 70_005, 200_013])
    lo, hi = -2.5, 2.5
    builder = stats.HistogramBuilder(-3.0, 3.0, 1024)
    scan = scan_numeric(column, low=lo, high=hi, cap=7, hist=builder)
    missing = mask | np.isnan(values)
    present = values[~missing]
    outside = ~missing & ((values < lo) | (values > hi))
    assert scan.missing == int(missing.sum())
    assert scan.minimum == present.min() and scan.maximum == present.max()
    assert scan.range_violations == int(outside.sum())
    np.testing.assert_array_equal(scan.null_positions, np.flatnonzero(missing)[:7])
    np.testing.assert_array_equal(scan.range_positions, np.flatnonzero(outside)[:7])
    hist = builder.finish()
    want = stats.fine_histogram(present, -3.0, 3.0, 1024)
    np.testing.assert_array_equal(hist.counts, want.counts)
    assert hist.n == present.size
    np.testing.assert_array_equal(hist.values, present)
    edges = np.quantile(present, [0.1, 0.5, 0.9])
    np.testing.assert_array_equal(hist.count_below(edges), [np.count_nonzero(present < e) for e in edges])


def test_duplicate_keys_with_nulls_and_cap() -> None:
    keys = pa.chunked_array([pa.array([5, 6, None, 5, 9]), pa.array([None, 9, 9, 100, 7])])
    count, positions = duplicate_key_rows(pa.table({"id": keys}), cap=3)
    assert count == 5  # 5, 5, 9, 9, 9 (nulls are not keys)
    np.testing.assert_array_equal(positions, [0, 3, 4])
    count, positions = duplicate_key_rows(pa.table({"id": keys}))
    np.testing.assert_array_equal(positions, [0, 3, 4, 6, 7])


def test_bounded_ks_error_is_at_most_one_fine_bin() -> None:
    rng = np.random.default_rng(11)
    cur, ref = rng.normal(0.02, 1, 200_000), rng.normal(0, 1, 150_000)
    lo, hi = stats.fine_range(ref)
    hc, hr = stats.fine_histogram(cur, lo, hi, 512), stats.fine_histogram(ref, lo, hi, 512)
    exact = ks_2samp(cur, ref, method="asymp").statistic
    bounded = ks.ks_from_histograms(hc, hr, exact=False)
    bound = float(np.max(np.maximum(hc.counts / hc.n, hr.counts / hr.n)))
    assert bounded.lower <= exact <= bounded.upper <= exact + bound + 1e-12


# --------------------------------------------------------------------------- the gate


def run(tmp_path: Path, ref: pa.Table, cur: pa.Table, contract: dict, threads: int | None = None,
        config: dict | None = None) -> GateResult:
    pq.write_table(ref, tmp_path / "ref.parquet", row_group_size=7_000)
    pq.write_table(cur, tmp_path / "cur.parquet", row_group_size=9_000)
    refs = [DatasetRef(role="reference", uri=str(tmp_path / "ref.parquet")),
            DatasetRef(role="eval", uri=str(tmp_path / "cur.parquet"), contract=contract)]
    extra = {"evidence_dir": str(tmp_path / f"ev{threads}"), "now": NOW.isoformat()}
    if threads:
        extra["threads"] = threads
    inputs = GateInputs(model="m", version="1",
                        manifest={"versions": {"1": {"datasets": [r.model_dump(mode="json") for r in refs]}}},
                        datasets={r.role: locate_dataset(r) for r in refs}, extra=extra)
    return run_gate("data_check", inputs, config or {})


def tables(n: int = 40_000, seed: int = 4) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.2, 1, n)
    x[:: 101] = np.nan
    cur = pa.table({"id": np.arange(n), "x": pa.array(x, mask=np.arange(n) % 97 == 0),
                    "label": pa.array(rng.choice([0, 1, 2], n, p=[0.6, 0.35, 0.05]), mask=np.arange(n) % 1000 == 1),
                    "c": rng.choice(["a", "b", "z"], n)})
    ref = pa.table({"id": np.arange(n // 2), "x": rng.normal(0, 1, n // 2), "label": rng.choice([0, 1], n // 2),
                    "c": rng.choice(["a", "b"], n // 2)})
    return ref, cur


CONTRACT = {"columns": {"x": {"type": "float", "min": -2, "max": 2, "max_null_rate": 0.01},
                        "c": {"type": "string", "categories": ["a", "b"]}},
            "key": ["id"], "label": {"column": "label", "values": [0, 1]}}


def test_label_is_categorical_for_drift(tmp_path: Path) -> None:
    ref, cur = tables()
    checks = {c.id: c for c in run(tmp_path, ref, cur, CONTRACT).checks}
    assert "ks:eval:label" not in checks
    r = np.bincount(ref.column("label").to_numpy(), minlength=2).astype(float)
    c_all = cur.column("label").drop_null().to_numpy()
    c = np.array([np.sum(c_all == 0), np.sum(c_all == 1), np.sum(c_all == 2)], dtype=float)
    rs, cs = np.maximum(np.append(r, 0) / r.sum(), 1e-4), np.maximum(c / c.sum(), 1e-4)
    assert checks["psi:eval:label"].observed == pytest.approx(float(np.sum((cs - rs) * np.log(cs / rs))), abs=1e-9)
    assert "1 categories unseen in the reference" in checks["psi:eval:label"].message


def test_drift_with_nulls_matches_numpy_and_scipy(tmp_path: Path) -> None:
    ref, cur = tables()
    result = run(tmp_path, ref, cur, CONTRACT)
    checks = {c.id: c for c in result.checks}
    x = cur.column("x").to_numpy(zero_copy_only=False)
    present = x[~np.isnan(x)]
    rv = ref.column("x").to_numpy()
    want = ks_2samp(present, rv, method="asymp")
    assert checks["ks:eval:x"].observed == pytest.approx(want.statistic, abs=1e-9)
    assert result.metrics["eval.x.ks_p_value"] == pytest.approx(want.pvalue, abs=1e-9)
    edges = np.unique(np.quantile(rv, np.arange(1, 10) / 10))
    cc = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1) / present.size
    rc = np.bincount(np.searchsorted(edges, rv, side="right"), minlength=edges.size + 1) / rv.size
    cc, rc = np.maximum(cc, 1e-4), np.maximum(rc, 1e-4)
    assert checks["psi:eval:x"].observed == pytest.approx(float(np.sum((cc - rc) * np.log(cc / rc))), abs=1e-9)
    assert checks["range:eval:x"].observed == int(np.sum((present < -2) | (present > 2)))
    assert checks["null_rate:eval:x"].observed == pytest.approx(1 - present.size / x.size)


def test_threads_do_not_change_the_result(tmp_path: Path) -> None:
    ref, cur = tables()
    one, three = run(tmp_path, ref, cur, CONTRACT, threads=1), run(tmp_path, ref, cur, CONTRACT, threads=3)
    assert [c.model_dump() for c in one.checks] == [c.model_dump() for c in three.checks]
    assert [e.sha256 for e in one.evidence] == [e.sha256 for e in three.evidence]
    table = json.loads((tmp_path / "ev3" / "data_check_columns.json").read_text())
    assert "unique_key:eval" not in table["offending_keys"]  # ids are unique
    assert table["offending_keys"]["range:eval:x"] == [int(i) for i in np.flatnonzero(
        np.abs(np.nan_to_num(cur.column("x").to_numpy(zero_copy_only=False))) > 2)[:10]]

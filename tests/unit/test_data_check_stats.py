"""data_check statistics against independent computations (scipy, NumPy) to 1e-9."""

import numpy as np
import pytest
from scipy.stats import ks_2samp

from gates.data_check import ks, stats


def numpy_psi(current: np.ndarray, reference: np.ndarray, bins: int, eps: float) -> float:
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1).astype(float)
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1).astype(float)
    c, r = np.maximum(c / c.sum(), eps), np.maximum(r / r.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def samples(kind: str, seed: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(0.05, 1, n), rng.normal(0, 1, m)
    if kind == "ties":  # heavy ties: integers
        return rng.integers(0, 20, n).astype(float), rng.integers(0, 21, m).astype(float)
    if kind == "heavy_tail":
        return rng.lognormal(0, 2, n), rng.lognormal(0.1, 2, m)
    if kind == "outliers":
        a = rng.normal(0, 1, n)
        a[:: 97] = 1e12
        return a, rng.normal(0, 1, m)
    if kind == "same":
        x = rng.normal(0, 1, n)
        return x, x.copy()
    raise AssertionError(kind)


KINDS = ["normal", "ties", "heavy_tail", "outliers", "same"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", [(30_000, 20_000), (50_001, 120_000)])
def test_ks_matches_scipy(kind: str, n: int, m: int) -> None:
    cur, ref = samples(kind, hash((kind, n)) % 1000, n, m)
    lo, hi = stats.fine_range(ref)
    hr = stats.fine_histogram(ref, lo, hi, 1 << 12)
    hc = stats.fine_histogram(cur, lo, hi, 1 << 12)
    got = ks.ks_from_histograms(hc, hr, exact=True)
    want = ks_2samp(cur, ref, method="asymp")
    assert got.exact
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.p_value == pytest.approx(want.pvalue, abs=1e-9)
    bounded = ks.ks_from_histograms(hc, hr, exact=False)
    assert bounded.lower - 1e-12 <= want.statistic <= bounded.upper + 1e-12
    assert bounded.statistic == bounded.upper


@pytest.mark.parametrize("kind", KINDS)
def test_small_samples_use_scipy_exact(kind: str) -> None:
    cur, ref = samples(kind, 7, 300, 500)
    got = ks.ks_small(cur, ref)
    want = ks_2samp(cur, ref)
    assert got.statistic == pytest.approx(want.statistic, abs=1e-12)
    assert got.p_value == pytest.approx(want.pvalue, abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bins", [10, 7, 20])
def test_psi_matches_numpy(kind: str, bins: int) -> None:
    cur, ref = samples(kind, 3, 40_000, 60_000)
    lo, hi = stats.fine_range(ref)
    hr = stats.fine_histogram(ref, lo, hi, 1 << 10)
    hc = stats.fine_histogram(cur, lo, hi, 1 << 10)
    edges = stats.psi_edges(hr, bins)
    np.testing.assert_array_equal(edges, np.unique(np.quantile(ref, np.arange(1, bins) / bins)))
    got = stats.psi(stats.counts_between(hc, edges), stats.counts_between(hr, edges), 1e-4)
    assert got == pytest.approx(numpy_psi(cur, ref, bins, 1e-4), abs=1e-9)


def test_quantiles_and_counts_are_exact() -> None:
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(size=5000), rng.integers(0, 3, 5000).astype(float), [np.inf, -np.inf, 1e300]])
    lo, hi = stats.fine_range(x)
    h = stats.fine_histogram(x, lo, hi, 64)
    probs = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(h.quantiles(probs[1:-1]), np.quantile(x, probs[1:-1]))
    edges = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 1e301])
    np.testing.assert_array_equal(h.count_below(edges), [np.count_nonzero(x < e) for e in edges])
    np.testing.assert_array_equal(h.count_below(edges, "right"), [np.count_nonzero(x <= e) for e in edges])


def test_psi_known_value() -> None:
    # two bins, 50/50 vs 80/20: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)
    assert stats.psi(np.array([80, 20]), np.array([50, 50]), 1e-4) == pytest.approx(
        0.3 * np.log(1.6) - 0.3 * np.log(0.4), abs=1e-12)
    assert stats.psi(np.array([0, 10]), np.array([0, 10]), 1e-4) == 0.0
    assert np.isnan(stats.psi(np.array([0, 0]), np.array([1, 1]), 1e-4))


def test_exact_refinement_touches_little_data_when_drift_is_clear() -> None:
    rng = np.random.default_rng(5)
    cur, ref = rng.normal(0.5, 1, 400_000), rng.normal(0, 1, 400_000)
    lo, hi = stats.fine_range(ref)
    got = ks.ks_from_histograms(stats.fine_histogram(cur, lo, hi), stats.fine_histogram(ref, lo, hi))
    assert got.statistic == pytest.approx(ks_2samp(cur, ref, method="asymp").statistic, abs=1e-12)
    assert got.refined_values < 0.01 * (cur.size + ref.size)


@pytest.mark.parametrize("bins", [257, 1 << 15])
def test_values_of_a_bin_are_exactly_that_bins_values_sorted(bins: int) -> None:
    """Bin values (the basis of exact quantiles and exact KS) on ties, -0.0/0.0 and infinities: on
    coarse bins most are extracted and sorted, on fine bins most hold one value and come from a probe."""
    rng = np.random.default_rng(11)
    values = np.concatenate([np.round(rng.normal(size=30_000), 2), [-0.0, 0.0, np.inf, -np.inf, 1e300, -1e300]])
    rng.shuffle(values)
    hist = stats.fine_histogram(values, -1.0, 1.0, bins=bins)
    every = np.arange(hist.bins + 2)
    expected_bin = hist.bin_of(values)
    for b, got in zip(every.tolist(), hist.values_in(every), strict=True):
        want = np.sort(values[expected_bin == b])
        assert np.array_equal(got.expanded(), want), b
        assert got.size == want.size


def test_kept_values_that_disagree_with_the_counts_are_a_bug_not_an_answer() -> None:
    hist = stats.fine_histogram(np.arange(100.0), 0.0, 100.0, bins=10)
    hist.counts = hist.counts.copy()
    hist.counts[5] += 1
    with pytest.raises(RuntimeError, match="values kept in bins counting"):
        hist.values_in(np.array([4, 5]))

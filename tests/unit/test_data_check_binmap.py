"""The bin maps of the drift histograms: monotone, equal values share a bin, and chosen by the data's shape."""

from __future__ import annotations

import numpy as np
import pytest

from gates.data_check import binmap, stats


def awkward_floats(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0, 1, 5000), rng.lognormal(0, 5, 5000), -rng.lognormal(0, 5, 5000),
             np.array([0.0, -0.0, 5e-324, -5e-324, 2.2e-308, -2.2e-308, 1e308, -1e308, np.inf, -np.inf,
                       1.0, np.nextafter(1.0, 2), np.nextafter(1.0, 0)]),
             rng.integers(-3, 4, 2000).astype(float)]
    return np.concatenate(parts)


@pytest.mark.parametrize("spacing", ["linear", "ordered"])
@pytest.mark.parametrize("lo,hi,bins", [(-3.0, 3.0, 1 << 15), (1e-6, 1e9, 1 << 15), (-1e9, -1e-3, 64),
                                        (0.0, 1.0, 16), (-5.0, 7.0, 1 << 20)])
def test_every_map_is_monotone_and_gives_equal_values_one_bin(spacing: binmap.Spacing, lo: float, hi: float,
                                                              bins: int) -> None:
    x = np.sort(awkward_floats(bins))
    index = binmap.BinMap(spacing, lo, hi, bins).index(x)
    assert np.all(np.diff(index) >= 0)  # sorted values, non-decreasing bins
    assert index.min() >= 0 and index.max() <= bins + 1
    same = x[1:] == x[:-1]  # includes -0.0 == 0.0
    assert np.all(index[1:][same] == index[:-1][same])


def test_ordered_keys_sort_like_the_values_and_invert() -> None:
    x = np.unique(awkward_floats(1) + 0.0)  # unique values (-0.0 folded into 0.0)
    keys = binmap.ordered_keys(x)
    assert np.all(np.diff(keys.astype(object)) > 0)  # strictly increasing, compared as Python ints
    for value, key in zip(x[::97].tolist(), keys[::97].tolist(), strict=True):
        assert binmap.value_of_key(key) == value
    assert binmap.ordered_keys(np.array([-0.0]))[0] == binmap.ordered_keys(np.array([0.0]))[0]


@pytest.mark.parametrize("kind,spacing,more_bins", [
    ("normal", "linear", False), ("ages", "linear", False), ("lognormal", "ordered", False),
    ("log_uniform", "ordered", False), ("cauchy", "linear", True)])
def test_the_map_is_chosen_by_the_shape_of_the_data(kind: str, spacing: str, more_bins: bool) -> None:
    rng = np.random.default_rng(3)
    sample = {"normal": lambda: rng.normal(0, 1, 50_000),
              "ages": lambda: np.clip(rng.normal(40, 9, 50_000).round(), 18, 90),
              "lognormal": lambda: rng.lognormal(0, 3, 50_000),
              "log_uniform": lambda: 10 ** rng.uniform(-6, 9, 50_000),
              "cauchy": lambda: rng.standard_cauchy(50_000)}[kind]()
    lo, hi = stats.range_of_sample(sample)
    chosen = binmap.choose(sample, lo, hi, 1 << 15)
    assert chosen.spacing == spacing
    assert (chosen.bins > 1 << 15) is more_bins
    assert chosen.bins <= binmap.MAX_BINS


def test_lower_edges_increase_and_bound_their_bins() -> None:
    for spacing in ("linear", "ordered"):
        m = binmap.BinMap(spacing, 1e-3, 1e6, 4096)  # type: ignore[arg-type]
        edges = np.array([m.lower_edge(k) for k in range(1, m.bins + 2, 37)])
        assert np.all(np.diff(edges) > 0)
        ks = np.arange(1, m.bins + 2, 37)
        assert np.all(np.abs(m.index(edges) - ks) <= 1)  # drawn at its bin (give or take the rounding)


def test_lower_edges_of_bins_past_the_last_float_are_drawn_at_infinity() -> None:
    m = binmap.BinMap("ordered", -2.5, 2.5, 1 << 19)  # the key span of ±2.5 is about 2**63
    edges = [m.lower_edge(k) for k in range(1, m.bins + 2, 4099)]
    assert all(a <= b for a, b in zip(edges, edges[1:], strict=False))
    assert edges[-1] == np.inf or np.isfinite(edges[-1])

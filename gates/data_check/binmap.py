"""How values are numbered into ordered fine bins: equal widths, or equal steps of the float's own bits.

Drift is exact whatever the bins are, as long as the map is monotone (a larger value never gets a
smaller bin) and equal values share a bin; the bins only decide how much data the exact steps must
look at individually. Two maps, both pure integer/float arithmetic per block (no search):

- ``linear``: equal-width bins over the reference's 0.1–99.9 % range. Right for data spread over
  its range (normal-like columns, bounded measures).
- ``ordered``: the float64's bits read as an unsigned integer whose order is the values' order
  (the sign bit set for positives, every bit flipped for negatives), cut into equal steps. A step
  of those integers is a fixed number of representable floats, i.e. a fixed *relative* width: the
  bins follow orders of magnitude. Right for heavy tails (lognormal, Pareto, byte counts from
  1e-6 to 1e9) where equal widths would put most of the data into the first bin or two.

:func:`choose` picks, per column, the map under which a sample of the reference leaves the least
work (the squared counts of bins holding several distinct values: what exact KS would sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

_SIGN = np.uint64(1 << 63)
Spacing = Literal["linear", "ordered"]


def ordered_keys(x: np.ndarray) -> np.ndarray:
    """float64 → uint64 in the same order (``-0.0`` counted as ``0.0``, so equal values get equal keys)."""
    canon = np.add(x, 0.0)  # -0.0 + 0.0 == +0.0
    flip = (canon.view(np.int64) >> 63).view(np.uint64)  # all ones for negatives, zero for positives
    flip |= _SIGN
    return np.bitwise_xor(canon.view(np.uint64), flip, out=flip)


def value_of_key(key: int) -> float:
    """The float64 whose :func:`ordered_keys` is ``key`` (the inverse map)."""
    k = np.array([key], dtype=np.uint64)
    bits = np.where(k & _SIGN, k ^ _SIGN, ~k)
    return float(bits.view(np.float64)[0])


@dataclass(frozen=True)
class BinMap:
    """Bin ``0`` = below ``lo``, ``1 .. bins`` over ``[lo, hi]``, ``bins + 1`` = above (or at the top)."""

    spacing: Spacing
    lo: float
    hi: float
    bins: int

    @property
    def scale(self) -> float:
        """Linear: bins per unit of value, a hair under ``bins / (hi − lo)`` so that ``hi`` itself (the
        reference's 99.9 % quantile, often a tied value) lands in the last inner bin, not with the
        overflow: a sample that moved past the reference's range then has the overflow bin to itself."""
        return self.bins / (self.hi - self.lo) / (1.0 + 1e-12)

    @cached_property
    def _ordered(self) -> tuple[int, int]:
        """Ordered: (base key, shift) with bin = (max(key, base) − base) >> shift, clipped."""
        lo_key = int(ordered_keys(np.array([self.lo]))[0])
        span = int(ordered_keys(np.array([self.hi]))[0]) - lo_key
        shift = 0
        while span >> shift >= self.bins:
            shift += 1
        return max(lo_key - (1 << shift), 0), shift

    def index(self, x: np.ndarray, dtype: type = np.int64, scratch: np.ndarray | None = None) -> np.ndarray:
        """The bin of each value (monotone non-decreasing in the value; NaN gets an arbitrary bin)."""
        top = self.bins + 1
        if self.spacing == "linear":
            with np.errstate(over="ignore", invalid="ignore"):  # ±1e308 · scale → ±inf, clipped; NaN: missing
                scaled = np.multiply(x, self.scale, out=None if scratch is None else scratch[: x.size])
                scaled += 1.0 - self.lo * self.scale
                np.clip(scaled, 0.0, float(top), out=scaled)
                return scaled.astype(dtype)
        base, shift = self._ordered
        keys = ordered_keys(x)
        np.maximum(keys, np.uint64(base), out=keys)
        keys -= np.uint64(base)
        keys >>= np.uint64(shift)
        np.minimum(keys, np.uint64(top), out=keys)
        return keys.astype(dtype)

    def lower_edge(self, k: int) -> float:
        """The smallest value of bin ``k`` (1 ≤ k ≤ bins + 1), for drawing."""
        if self.spacing == "linear":
            return self.lo + (k - 1) / self.scale
        base, shift = self._ordered
        top = int(ordered_keys(np.array([np.inf]))[0])  # bins past +inf's key hold no values: draw them at inf
        return value_of_key(min(base + (k << shift), top))


MAX_BINS = 1 << 20  # 4-byte bin numbers above 65 533 bins: twice the memory of the default's 2 bytes
BIN_SHARE = 1 / 2048  # a bin holding several values should hold less of the sample than this (50 000 values: 24)


def choose(sample: np.ndarray, lo: float, hi: float, bins: int) -> BinMap:
    """The bins under which ``sample`` leaves exact KS the least to sort.

    Spacing: linear, unless it leaves a heavy bin and ordered is far better. Count: ``bins``, multiplied by 4 (up to
    :data:`MAX_BINS`) while a bin holding several distinct values holds more than
    :data:`BIN_SHARE` of the sample — a tail-heavy column (Cauchy-like) whose bulk is a small part of
    its range, where such a bin would be a KS candidate holding millions of values.
    """
    linear = BinMap("linear", lo, hi, bins)
    if not sample.size:
        return linear
    ordered_sample = np.sort(sample)
    best = linear
    if _largest_share(linear, ordered_sample) > BIN_SHARE:  # equal widths leave a heavy bin: try magnitudes
        ordered = BinMap("ordered", lo, hi, bins)
        if _work(ordered, ordered_sample) * 4 < _work(linear, ordered_sample):
            best = ordered
    while best.bins * 4 <= MAX_BINS and _largest_share(best, ordered_sample) > BIN_SHARE:
        best = BinMap(best.spacing, lo, hi, best.bins * 4)
    return best


def _largest_share(bin_map: BinMap, sorted_sample: np.ndarray) -> float:
    """Largest share of the sample in one inner bin holding several values (the 0.1 % tails beyond the
    range are in the outer bins whatever the bins are)."""
    counts = _several_counts(bin_map, sorted_sample, inner=True)
    return float(counts.max()) / sorted_sample.size if counts.size else 0.0


def _work(bin_map: BinMap, sorted_sample: np.ndarray) -> float:
    """Σ count² over the bins holding several distinct values of the (sorted) sample."""
    counts = _several_counts(bin_map, sorted_sample).astype(np.float64)
    return float(np.sum(counts * counts))


def _several_counts(bin_map: BinMap, sorted_sample: np.ndarray, inner: bool = False) -> np.ndarray:
    """Counts of the sample's bins that hold several distinct values (the sample sorted, so bins are runs)."""
    index = bin_map.index(sorted_sample)
    starts = np.flatnonzero(np.concatenate([[True], index[1:] != index[:-1]]))
    ends = np.concatenate([starts[1:], [index.size]])
    several = sorted_sample[starts] != sorted_sample[ends - 1]
    if inner:
        several &= (index[starts] > 0) & (index[starts] <= bin_map.bins)
    return (ends - starts)[several]

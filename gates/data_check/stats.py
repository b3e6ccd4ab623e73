"""Drift statistics on NumPy arrays: fine histograms, exact quantiles, PSI and two-sample KS.

The costly part of drift is exact KS, which classically needs both samples sorted
(O(n log n) per column). Here every sample is first counted into ``B`` ordered fine bins
(one arithmetic pass, O(n), done block by block while the block is in cache, in the same pass
as the contract checks); the ECDF difference inside a bin can only move between two known
limits, so the bins give a guaranteed interval ``[lower, upper]`` for the KS statistic.
*Exact* mode then sorts only the values of the few bins whose upper limit beats the best
exact value seen (usually a tiny fraction of the data); *bounded* mode stops at the interval.
Exact quantiles (for PSI bin edges) and PSI bin counts use the same trick: only the values of
the fine bin holding an edge are looked at individually.

The histogram keeps, per block, the values and their bin numbers (2 bytes per value for up to
65 533 bins), so picking the values of a few bins later is one table lookup per value, without
recomputing or re-reading anything.

All functions take 1-D float64 arrays without NaN (callers drop nulls and NaN first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gates.data_check.ksdist import kstwo_sf

DEFAULT_FINE_BINS = 1 << 15
MAX_AUTO_EXACT = 10_000  # as scipy's ks_2samp: below this sample size its exact p-value applies
BLOCK = 1 << 16  # values per block: 512 KiB of float64, cache-sized


def index_dtype(bins: int) -> type:
    """The narrowest integer type that holds bin numbers ``0 .. bins + 2`` (``bins + 2``: a missing value)."""
    return np.uint16 if bins + 2 <= np.iinfo(np.uint16).max else np.int32


@dataclass
class FineHistogram:
    """Counts of one sample in ordered fine bins over ``[lo, hi]`` (plus an under- and overflow bin).

    Bin ``k`` (0 = underflow, ``bins + 1`` = overflow) holds the values whose :meth:`bin_of`
    is ``k``; the map is monotone, so every value of bin ``k`` is <= every value of bin ``k + 1``.
    ``blocks`` are the sample's values, block by block, with each value's bin.
    """

    lo: float
    hi: float
    scale: float
    bins: int
    counts: np.ndarray
    blocks: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    n: int = 0
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def values(self) -> np.ndarray:
        """The whole sample, in its order (a copy when it is held in several blocks or has missing slots)."""
        parts = [v[i <= self.bins + 1] if np.any(i > self.bins + 1) else v for v, i in self.blocks]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0)

    def bin_of(self, x: np.ndarray | float) -> np.ndarray:
        """The fine bin of each value (monotone non-decreasing in the value)."""
        return _bin_index(np.atleast_1d(np.asarray(x, dtype=np.float64)), self.lo, self.scale, self.bins)

    def cumulative(self) -> np.ndarray:
        """``c[k]`` = number of values in bins ``< k`` (length ``bins + 3``)."""
        out = np.zeros(self.counts.size + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    def values_in(self, bins: np.ndarray) -> list[np.ndarray]:
        """The values of each listed bin, each sorted (one pass over the sample for all uncached bins)."""
        bins = np.asarray(bins, dtype=np.int64)
        if bins.size == 0:
            return []
        self.preload(bins)
        return [self._cache[b] for b in bins.tolist()]

    def preload(self, bins: np.ndarray) -> None:
        """Extract and sort the values of ``bins`` not extracted yet, in one pass over the sample."""
        missing = np.array(sorted({b for b in np.asarray(bins).tolist() if b not in self._cache}), dtype=np.int64)
        if missing.size == 0:
            return
        occupied = missing[self.counts[missing] > 0]
        for b in missing[self.counts[missing] == 0].tolist():
            self._cache[b] = np.zeros(0, dtype=np.float64)
        if occupied.size == 0:
            return
        wanted = np.zeros(self.counts.size + 1, dtype=bool)  # the last slot: missing values, never wanted
        wanted[occupied] = True
        picked_v = []
        for values, index in self.blocks:
            pos = np.flatnonzero(np.take(wanted, index))
            if pos.size:
                picked_v.append(values[pos])
        picked_values = np.concatenate(picked_v)
        sizes = self.counts[occupied]
        if picked_values.size == int(sizes.sum()):
            # The bin map is monotone, so sorting by value alone also orders by bin, and bin k's
            # values are the next counts[k] of the sorted run: one plain sort, no two-key lexsort.
            picked_values.sort()
            ends = np.cumsum(sizes)
            starts = ends - sizes
        else:  # counts and kept values disagree (not for a finished builder): sort by (bin, value)
            picked_bins = self.bin_of(picked_values)
            order = np.lexsort((picked_values, picked_bins))
            picked_values, picked_bins = picked_values[order], picked_bins[order]
            starts = np.searchsorted(picked_bins, occupied, side="left")
            ends = np.searchsorted(picked_bins, occupied, side="right")
        for b, s, e in zip(occupied.tolist(), starts.tolist(), ends.tolist(), strict=True):
            self._cache[b] = picked_values[s:e]

    def count_below(self, edges: np.ndarray, side: Literal["left", "right"] = "left") -> np.ndarray:
        """Exact number of values ``< edge`` (side="left") or ``<= edge`` (side="right") per edge."""
        edges = np.asarray(edges, dtype=np.float64)
        if edges.size == 0:
            return np.zeros(0, dtype=np.int64)
        cum = self.cumulative()
        edge_bins = self.bin_of(edges)
        unique_bins = np.unique(edge_bins)
        inside = dict(zip(unique_bins.tolist(), self.values_in(unique_bins), strict=True))
        return np.array([cum[b] + np.searchsorted(inside[b], e, side=side)
                         for b, e in zip(edge_bins.tolist(), edges.tolist(), strict=True)], dtype=np.int64)

    def order_statistics(self, ranks: np.ndarray) -> np.ndarray:
        """The exact ``ranks``-th smallest values (0-based), as a sort would give them."""
        ranks = np.asarray(ranks, dtype=np.int64)
        cum = self.cumulative()
        bins = np.searchsorted(cum, ranks, side="right") - 1
        unique_bins = np.unique(bins)
        inside = dict(zip(unique_bins.tolist(), self.values_in(unique_bins), strict=True))
        return np.array([inside[b][r - cum[b]] for b, r in zip(bins.tolist(), ranks.tolist(), strict=True)],
                        dtype=np.float64)

    def quantiles(self, probs: np.ndarray) -> np.ndarray:
        """Exact quantiles with NumPy's default ("linear") method."""
        probs = np.asarray(probs, dtype=np.float64)
        pos = probs * (self.n - 1)
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, self.n - 1)
        stats = self.order_statistics(np.concatenate([below, above]))
        lo, hi = stats[: below.size], stats[below.size:]
        frac = pos - below
        # numpy's _lerp: a + (b - a) * t, evaluated from the other end when t >= 0.5
        diff = hi - lo
        return np.where(frac >= 0.5, hi - diff * (1 - frac), lo + diff * frac)


def _bin_index(x: np.ndarray, lo: float, scale: float, bins: int) -> np.ndarray:
    # 1 + floor((x - lo) * scale), clipped to [0, bins + 1]: monotone in x.
    scaled = np.multiply(x, scale)
    scaled += 1.0 - lo * scale
    np.clip(scaled, 0.0, float(bins + 1), out=scaled)
    return scaled.astype(np.int64)  # truncation == floor on non-negative values


class HistogramBuilder:
    """Counts blocks of values into fine bins as they stream by (the arithmetic of :func:`_bin_index`)."""

    def __init__(self, lo: float, hi: float, bins: int = DEFAULT_FINE_BINS, keep: bool = True) -> None:
        self.lo, self.hi, self.bins, self.keep = lo, hi, bins, keep
        self.scale = bins / (hi - lo)
        self.offset = 1.0 - lo * self.scale
        self.top = float(bins + 1)
        self.dtype = index_dtype(bins)
        self.counts = np.zeros(bins + 2, dtype=np.int64)
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.n = 0
        self._scratch = np.empty(BLOCK, dtype=np.float64)
        if bins + 2 > np.iinfo(self.dtype).max:
            raise ValueError(f"too many fine bins: {bins}")

    def add(self, values: np.ndarray, missing: np.ndarray | None = None) -> None:
        """Count ``values`` (float64); they are kept (not copied) for later refinement.

        ``missing`` (a mask, or None) marks values that are not values at all (nulls, NaN): they get
        the bin number ``bins + 2``, which is never counted nor picked, so a column with nulls is
        kept as Arrow's own buffer instead of a compacted copy.
        """
        for start in range(0, values.size, BLOCK):
            block = values[start:start + BLOCK]
            scaled = np.multiply(block, self.scale, out=self._scratch[: block.size])
            scaled += self.offset
            np.maximum(scaled, 0.0, out=scaled)
            np.minimum(scaled, self.top, out=scaled)
            if missing is None:
                index = scaled.astype(self.dtype)
            else:
                with np.errstate(invalid="ignore"):  # NaN or garbage in missing slots: overwritten next
                    index = scaled.astype(self.dtype)
                index[missing[start:start + BLOCK]] = self.bins + 2
            counts = np.bincount(index, minlength=self.bins + 3)
            self.counts += counts[: self.bins + 2]
            self.n += int(block.size - counts[self.bins + 2:].sum())
            if self.keep:
                self.blocks.append((block, index))

    def finish(self) -> FineHistogram:
        return FineHistogram(lo=self.lo, hi=self.hi, scale=self.scale, bins=self.bins, counts=self.counts,
                             blocks=self.blocks, n=self.n)


def fine_range(reference: np.ndarray, current: np.ndarray | None = None) -> tuple[float, float]:
    """A robust range for the fine bins: the 0.1%–99.9% span of a strided sample of the data.

    Any range gives exact results; a range covering the bulk of the data keeps bins small.
    """
    parts = [a[:: max(1, a.size // 50_000)] for a in (reference, current) if a is not None and a.size]
    return range_of_sample(np.concatenate(parts) if parts else np.zeros(0))


def strided_sample(blocks: list[np.ndarray], total: int) -> np.ndarray:
    """``concatenate(blocks)[::max(1, total // 50_000)]`` without concatenating."""
    stride = max(1, total // 50_000)
    out, offset = [], 0
    for block in blocks:
        out.append(block[(-offset) % stride:: stride])
        offset += block.size
    return np.concatenate(out) if out else np.zeros(0)


def range_of_sample(sample: np.ndarray) -> tuple[float, float]:
    if not sample.size:
        return 0.0, 1.0
    lo, hi = np.quantile(sample, [0.001, 0.999])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        lo, hi = float(np.min(sample)), float(np.max(sample))
        if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
            hi = lo + 1.0 if np.isfinite(lo) else 1.0
            lo = lo if np.isfinite(lo) else 0.0
    return float(lo), float(hi)


def fine_histogram(values: np.ndarray, lo: float, hi: float, bins: int = DEFAULT_FINE_BINS) -> FineHistogram:
    """Count ``values`` into ``bins`` equal-width bins over ``[lo, hi]`` plus under/overflow."""
    builder = HistogramBuilder(lo, hi, bins)
    builder.add(np.asarray(values, dtype=np.float64))
    return builder.finish()


# --------------------------------------------------------------------------- KS


@dataclass
class KSResult:
    """Two-sample KS: statistic (exact, or the upper limit in bounded mode), its bounds and p-value."""

    statistic: float
    lower: float
    upper: float
    p_value: float
    exact: bool
    refined_values: int = 0


def _ks_bounds(current: FineHistogram, reference: FineHistogram
               ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    n, m = current.n, reference.n
    cum_a = np.concatenate([[0.0], np.cumsum(current.counts.astype(np.float64))])
    cum_b = np.concatenate([[0.0], np.cumsum(reference.counts.astype(np.float64))])
    end = cum_a[1:] / n - cum_b[1:] / m
    lower = float(np.max(np.abs(end)))
    hi_k = cum_a[1:] / n - cum_b[:-1] / m  # all of bin k's current values counted, none of the reference's
    lo_k = cum_a[:-1] / n - cum_b[1:] / m
    upper_k = np.maximum(np.abs(hi_k), np.abs(lo_k))
    return cum_a, cum_b, lower, upper_k


def ks_candidates(current: FineHistogram, reference: FineHistogram) -> np.ndarray:
    """The bins exact KS will resolve individually (see :func:`ks_from_histograms`)."""
    _, _, lower, upper_k = _ks_bounds(current, reference)
    return np.flatnonzero(upper_k > lower)


def ks_from_histograms(current: FineHistogram, reference: FineHistogram, *, exact: bool = True) -> KSResult:
    """KS statistic sup|F_cur - F_ref| from two fine histograms on the same bins.

    ``lower`` is attained (the difference at the last value of some bin); ``upper`` bounds
    the difference anywhere. Exact mode resolves every bin whose upper limit exceeds ``lower``.
    """
    n, m = current.n, reference.n
    cum_a, cum_b, lower, upper_k = _ks_bounds(current, reference)
    upper = float(np.max(upper_k))
    refined = 0
    if exact and upper > lower:
        candidates = np.flatnonzero(upper_k > lower)
        a_parts, b_parts = current.values_in(candidates), reference.values_in(candidates)
        a_sizes = np.array([p.size for p in a_parts], dtype=np.int64)
        b_sizes = np.array([p.size for p in b_parts], dtype=np.int64)
        a = np.concatenate(a_parts) if a_parts else np.zeros(0)
        b = np.concatenate(b_parts) if b_parts else np.zeros(0)
        refined = int(a.size + b.size)
        best = lower
        if refined:
            # Bins are ordered and each bin's values sorted, so ``a`` and ``b`` are sorted, and a value
            # of a later bin is strictly greater than any value of an earlier bin. For a point p of
            # candidate bin k: F(p) = cum[k] + (values of bin k <= p) = cum[k] + searchsorted(all, p) - start[k].
            start_a = np.concatenate([[0], np.cumsum(a_sizes)[:-1]])
            start_b = np.concatenate([[0], np.cumsum(b_sizes)[:-1]])
            slot = np.concatenate([np.repeat(np.arange(candidates.size), a_sizes),
                                   np.repeat(np.arange(candidates.size), b_sizes)])
            points = np.concatenate([a, b])
            k = candidates[slot]
            fa = (cum_a[k] + (np.searchsorted(a, points, side="right") - start_a[slot])) / n
            fb = (cum_b[k] + (np.searchsorted(b, points, side="right") - start_b[slot])) / m
            best = max(best, float(np.max(np.abs(fa - fb))))
        lower = upper = best
    statistic = upper
    return KSResult(statistic=statistic, lower=lower, upper=upper, p_value=ks_p_value(statistic, n, m),
                    exact=lower == upper, refined_values=refined)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value, as ``scipy.stats.ks_2samp(method="asymp")`` computes it:
    ``kstwo.sf(D, round(n*m/(n+m)))`` (:mod:`gates.data_check.ksdist`, no scipy import)."""
    if n == 0 or m == 0:
        return float("nan")
    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    return float(np.clip(kstwo_sf(float(statistic), int(np.round(en))), 0.0, 1.0))


def ks_small(current: np.ndarray, reference: np.ndarray) -> KSResult:
    """Small samples: scipy's own ks_2samp (exact p-value), so results match it bit for bit."""
    from scipy.stats import ks_2samp

    res = ks_2samp(current, reference)
    d = float(res.statistic)
    return KSResult(statistic=d, lower=d, upper=d, p_value=float(res.pvalue), exact=True,
                    refined_values=current.size + reference.size)


# --------------------------------------------------------------------------- PSI


def psi(current_counts: np.ndarray, reference_counts: np.ndarray, epsilon: float) -> float:
    """Population stability index: sum((c - r) * ln(c / r)) over bins of shares floored at ``epsilon``."""
    c = np.asarray(current_counts, dtype=np.float64)
    r = np.asarray(reference_counts, dtype=np.float64)
    if c.sum() == 0 or r.sum() == 0:
        return float("nan")
    c = np.maximum(c / c.sum(), epsilon)
    r = np.maximum(r / r.sum(), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_edges(reference: FineHistogram, bins: int) -> np.ndarray:
    """Interior bin edges at the reference's exact quantiles 1/bins … (bins-1)/bins, duplicates dropped."""
    if reference.n == 0:
        return np.zeros(0)
    return np.unique(reference.quantiles(np.arange(1, bins) / bins))


def counts_between(hist: FineHistogram, edges: np.ndarray) -> np.ndarray:
    """Counts in the bins ``(-inf, e1), [e1, e2), …, [ek, inf)`` (as ``np.searchsorted(edges, x, 'right')``)."""
    below = hist.count_below(edges, side="left")
    bounds = np.concatenate([[0], below, [hist.n]])
    return np.diff(bounds)

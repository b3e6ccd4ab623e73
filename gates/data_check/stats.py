"""Drift statistics on NumPy arrays: fine histograms, exact quantiles and PSI (KS is in :mod:`.ks`).

The costly part of drift is exact KS, which classically needs both samples sorted
(O(n log n) per column). Here every sample is first counted into ``B`` ordered fine bins
(one arithmetic pass, O(n), done block by block while the block is in cache, in the same pass
as the contract checks); the ECDF difference inside a bin can only move between two known
limits, so the bins give a guaranteed interval ``[lower, upper]`` for the KS statistic.
Exact quantiles (for PSI bin edges), PSI bin counts and exact KS then look at individual
values only in the few fine bins that matter.

Discrete data (integers, dates, prices in cents, ratings) is the common case where "few bins"
is not few values: one fine bin can hold a value shared by half the rows. So before a bin's
values are extracted, :meth:`FineHistogram.probe` asks, in one lookup pass without copying or
sorting, whether every value in it is the same; such a bin is answered from its count and
that one value (:class:`BinSample` with weights), and only bins holding several distinct
values are extracted and sorted.

The histogram keeps, per block, the values and their bin numbers (2 bytes per value for up to
65 533 bins), so picking the values of a few bins later is one table lookup per value, without
recomputing or re-reading anything.

All functions take 1-D float64 arrays without NaN (callers drop nulls and NaN first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np

from gates.data_check.binmap import BinMap, Spacing

DEFAULT_FINE_BINS = 1 << 15
BLOCK = 1 << 16  # values per block: 512 KiB of float64, cache-sized
# Below this many values in the wanted bins (or 1/16 of the sample), sorting them costs less than the
# probe pass that could spare it.
PROBE_MIN_VALUES = 1 << 16

_UNKNOWN, _SINGLE, _SEVERAL = 0, 1, 2


def index_dtype(bins: int) -> type:
    """The narrowest integer type that holds bin numbers ``0 .. bins + 2`` (``bins + 2``: a missing value)."""
    return np.uint16 if bins + 2 <= np.iinfo(np.uint16).max else np.int32


@dataclass(frozen=True)
class BinSample:
    """The values of one fine bin in order: each value (``weights`` None), or distinct values with counts."""

    values: np.ndarray
    weights: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.values.size if self.weights is None else self.weights.sum())

    def expanded(self) -> np.ndarray:
        """Every value, sorted (repeats written out)."""
        return self.values if self.weights is None else np.repeat(self.values, self.weights)

    def count(self, x: np.ndarray | float, side: Literal["left", "right"]) -> np.ndarray:
        """Number of values ``< x`` (side="left") or ``<= x`` (side="right")."""
        at = np.searchsorted(self.values, x, side=side)
        if self.weights is None:
            return np.asarray(at)
        return np.concatenate([[0], np.cumsum(self.weights)])[at]

    def at_rank(self, rank: int) -> float:
        """The ``rank``-th smallest value (0-based)."""
        if self.weights is None:
            return float(self.values[rank])
        return float(self.values[np.searchsorted(np.cumsum(self.weights), rank, side="right")])


@dataclass
class FineHistogram:
    """Counts of one sample in ordered fine bins over ``[lo, hi]`` (plus an under- and overflow bin).

    Bin ``k`` (0 = underflow, ``bins + 1`` = overflow) holds the values whose :meth:`bin_of`
    is ``k``; the map is monotone and equal values share a bin, so every value of bin ``k`` is
    < every value of bin ``k + 1``. ``blocks`` are the sample's values, block by block, with each
    value's bin.
    """

    bin_map: BinMap
    counts: np.ndarray
    blocks: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    n: int = 0
    extracted: int = 0  # values copied out and sorted so far (bins answered by a probe copy none)
    _cache: dict[int, BinSample] = field(default_factory=dict, repr=False)
    _state: np.ndarray | None = field(default=None, repr=False)  # per bin: unknown / single value / several
    _one: np.ndarray | None = field(default=None, repr=False)  # per bin: one of its values (NaN: none seen)

    @property
    def bins(self) -> int:
        return self.bin_map.bins

    @property
    def values(self) -> np.ndarray:
        """The whole sample, in its order (a copy when it is held in several blocks or has missing slots)."""
        parts = [v[i <= self.bins + 1] if np.any(i > self.bins + 1) else v for v, i in self.blocks]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0)

    def bin_of(self, x: np.ndarray | float) -> np.ndarray:
        """The fine bin of each value (monotone non-decreasing in the value)."""
        return self.bin_map.index(np.atleast_1d(np.asarray(x, dtype=np.float64)))

    def cumulative(self) -> np.ndarray:
        """``c[k]`` = number of values in bins ``< k`` (length ``bins + 3``)."""
        out = np.zeros(self.counts.size + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    def known_single(self, bins: np.ndarray) -> np.ndarray:
        """Per listed bin: known to hold one distinct value, without probing (by a probe that ran, or
        because the sample is whole numbers on bins narrower than 1)."""
        if self._state is None:
            return np.zeros(np.asarray(bins).size, dtype=bool)
        return self._state[np.asarray(bins, dtype=np.int64)] == _SINGLE

    def single_valued(self, bins: np.ndarray) -> np.ndarray:
        """Per listed bin: does it hold one distinct value (or none)? Probes bins not known yet."""
        bins = np.asarray(bins, dtype=np.int64)
        self.probe(bins)
        assert self._state is not None
        return self._state[bins] != _SEVERAL

    def probe(self, bins: np.ndarray) -> None:
        """Find which of ``bins`` hold a single distinct value, copying nothing out of the sample.

        Values are written into a one-slot-per-bin table (any of a bin's values may land in its
        slot) and compared with what their slot holds: a bin holds several values iff some value
        differs. When the bins asked for hold most of the sample (a discrete column), that is two
        plain passes over every value (write all, then compare all); otherwise one pass over the
        wanted values only, which stops early once every bin has shown two values (continuous data).
        """
        if self._state is None:
            self._state = np.zeros(self.counts.size + 1, dtype=np.int8)
            self._one = np.full(self.counts.size + 1, np.nan)
        state = self._state
        bins = np.unique(np.asarray(bins, dtype=np.int64))
        todo = bins[state[bins] == _UNKNOWN]
        if todo.size == 0:
            return
        occupied = todo[self.counts[todo] > 0]
        if int(self.counts[occupied].sum()) * 2 >= self.n:
            several = self._probe_all()
            unknown = np.flatnonzero(state == _UNKNOWN)
            state[unknown] = np.where(several[unknown], _SEVERAL, _SINGLE)
        else:
            several = self._probe_some(occupied)
            state[todo] = np.where(several[todo], _SEVERAL, _SINGLE)

    def _probe_all(self) -> np.ndarray:
        one = self._one
        assert one is not None
        for values, index in self.blocks:
            one[index] = values
        several = np.zeros(self.counts.size + 1, dtype=bool)
        for values, index in self.blocks:
            differs = np.take(one, index) != values
            if differs.any():
                several[index[differs]] = True
        return several

    def _probe_some(self, occupied: np.ndarray) -> np.ndarray:
        one = self._one
        assert one is not None
        wanted = np.zeros(self.counts.size + 1, dtype=bool)  # the last slot: missing values, never wanted
        wanted[occupied] = True
        several = np.zeros_like(wanted)
        for values, index in self.blocks if occupied.size else ():
            pos = np.flatnonzero(np.take(wanted, index))
            if not pos.size:
                continue
            v, b = values[pos], index[pos]
            before = one[b]
            one[b] = v
            after = one[b]
            differs = after != v
            differs |= (before != after) & ~np.isnan(before)
            if differs.any():
                several[b[differs]] = True
                wanted[b[differs]] = False  # settled: later blocks cannot make it single again
                if not wanted.any():  # continuous data: every bin shows two values within a few blocks
                    break
        return several

    def values_in(self, bins: np.ndarray) -> list[BinSample]:
        """The values of each listed bin, in order (one pass over the sample for all uncached bins)."""
        bins = np.asarray(bins, dtype=np.int64)
        if bins.size == 0:
            return []
        self.preload(bins)
        return [self._cache[b] for b in bins.tolist()]

    def preload(self, bins: np.ndarray) -> None:
        """Make the values of ``bins`` available: single-valued bins from a probe, the others extracted
        and sorted in one pass over the sample."""
        missing = np.array(sorted({b for b in np.asarray(bins).tolist() if b not in self._cache}), dtype=np.int64)
        if missing.size == 0:
            return
        occupied = missing[self.counts[missing] > 0]
        for b in missing[self.counts[missing] == 0].tolist():
            self._cache[b] = BinSample(np.zeros(0, dtype=np.float64))
        if occupied.size == 0:
            return
        if int(self.counts[occupied].sum()) >= min(PROBE_MIN_VALUES, self.n // 16 + 1):
            self.probe(occupied)
        if self._state is not None:  # bins a probe found single-valued: their one value and its count
            assert self._one is not None
            single = self._state[occupied] == _SINGLE
            for b in occupied[single].tolist():
                self._cache[b] = BinSample(self._one[b: b + 1].copy(), self.counts[b: b + 1].copy())
            occupied = occupied[~single]
            if occupied.size == 0:
                return
        self._extract(occupied)

    def entries(self, bins: np.ndarray) -> int:
        """How many entries the values of ``bins`` take: one per bin known to hold a single value, one
        per value otherwise (probing first when the bins hold enough values for that to pay)."""
        bins = np.asarray(bins, dtype=np.int64)
        if int(self.counts[bins].sum()) >= min(PROBE_MIN_VALUES, self.n // 16 + 1):
            self.probe(bins)
        known = self.known_single(bins)
        return int(np.count_nonzero(known) + self.counts[bins][~known].sum())

    def gathered(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The values of ``bins`` in no particular order, without sorting: ``(raw, single, copies)`` —
        value by value for bins holding several (one pass; sorted bins already extracted are reused),
        and for bins known to hold one value, that value and its count."""
        bins = np.asarray(bins, dtype=np.int64)
        bins = bins[self.counts[bins] > 0]
        known = self.known_single(bins)
        single = self._one[bins[known]] if self._one is not None and known.any() else np.zeros(0)
        copies = self.counts[bins[known]]
        rest = bins[~known]
        cached = [b for b in rest.tolist() if b in self._cache]
        raw = [self._cache[b].expanded() for b in cached]
        todo = np.setdiff1d(rest, np.array(cached, dtype=np.int64), assume_unique=True)
        if todo.size:
            raw.append(self._pick(todo))
        return (np.concatenate(raw) if raw else np.zeros(0)), single, copies

    @overload
    def _pick(self, occupied: np.ndarray) -> np.ndarray: ...

    @overload
    def _pick(self, occupied: np.ndarray, with_bins: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...

    def _pick(self, occupied: np.ndarray, with_bins: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The values of ``occupied`` bins in sample order (and their bins): one lookup pass, a copy of
        those values only."""
        wanted = np.zeros(self.counts.size + 1, dtype=bool)  # the last slot: missing values, never wanted
        wanted[occupied] = True
        picked_v, picked_b = [], []
        for values, index in self.blocks:
            pos = np.flatnonzero(np.take(wanted, index))
            if pos.size:
                picked_v.append(values[pos])
                if with_bins:
                    picked_b.append(index[pos])
        picked_values = np.concatenate(picked_v) if picked_v else np.zeros(0)
        expected = int(self.counts[occupied].sum())
        if picked_values.size != expected:  # a builder always keeps what it counted
            raise RuntimeError(f"fine histogram: {picked_values.size} values kept in bins counting {expected}")
        if with_bins:
            return picked_values, (np.concatenate(picked_b) if picked_b else np.zeros(0, dtype=np.int64))
        return picked_values

    def _extract(self, occupied: np.ndarray) -> None:
        picked_values = self._pick(occupied)
        sizes = self.counts[occupied].copy()
        self.extracted += int(picked_values.size)
        # A value holding most of what was picked (a spike: a default, a cap, a round number amid
        # continuous values) is counted once and kept aside instead of being sorted copy by copy.
        spike, picked_values, copies = split_spike(picked_values)
        spike_bin = int(self.bin_of(spike)[0]) if copies else -1
        if copies:
            sizes[np.searchsorted(occupied, spike_bin)] -= copies
        # The bin map is monotone, so sorting by value alone also orders by bin, and bin k's values
        # are the next counts[k] of the sorted run: one plain sort, no two-key lexsort.
        picked_values.sort()
        ends = np.cumsum(sizes)
        for b, s, e in zip(occupied.tolist(), (ends - sizes).tolist(), ends.tolist(), strict=True):
            if b != spike_bin:
                self._cache[b] = BinSample(picked_values[s:e])
                continue
            inside = picked_values[s:e]
            at = int(np.searchsorted(inside, spike))
            weights = np.ones(inside.size + 1, dtype=np.int64)
            weights[at] = copies
            self._cache[b] = BinSample(np.insert(inside, at, spike), weights)

    def count_below(self, edges: np.ndarray, side: Literal["left", "right"] = "left") -> np.ndarray:
        """Exact number of values ``< edge`` (side="left") or ``<= edge`` (side="right") per edge.

        Counting needs no order: a bin not already extracted is compared with its edges value by
        value (one pass picks every such bin's values), so a heavy bin holding an edge — the overflow
        bin of a sample that moved past the reference's range — is never sorted for it.
        """
        edges = np.asarray(edges, dtype=np.float64)
        if edges.size == 0:
            return np.zeros(0, dtype=np.int64)
        cum = self.cumulative()
        edge_bins = self.bin_of(edges)
        unique_bins = np.unique(edge_bins)
        if int(self.counts[unique_bins].sum()) >= min(PROBE_MIN_VALUES, self.n // 16 + 1):
            self.probe(unique_bins)
        known = self.known_single(unique_bins)
        sorted_bins = [b for b in unique_bins.tolist() if b in self._cache]
        loose = np.array([b for b in unique_bins[~known].tolist() if b not in self._cache], dtype=np.int64)
        inside: dict[int, BinSample] = {b: self._cache[b] for b in sorted_bins}
        for b in unique_bins[known].tolist():
            if b not in inside:
                assert self._one is not None
                inside[b] = BinSample(self._one[b: b + 1], self.counts[b: b + 1])
        picked, picked_bins = self._pick(loose, with_bins=True) if loose.size else (np.zeros(0), np.zeros(0))
        out = []
        for b, e in zip(edge_bins.tolist(), edges.tolist(), strict=True):
            if b in inside:
                out.append(cum[b] + int(inside[b].count(e, side)))
            else:
                mine = picked[picked_bins == b]
                out.append(cum[b] + int(np.count_nonzero(mine < e if side == "left" else mine <= e)))
        return np.array(out, dtype=np.int64)

    def order_statistics(self, ranks: np.ndarray) -> np.ndarray:
        """The exact ``ranks``-th smallest values (0-based), as a sort would give them."""
        ranks = np.asarray(ranks, dtype=np.int64)
        cum = self.cumulative()
        bins = np.searchsorted(cum, ranks, side="right") - 1
        unique_bins = np.unique(bins)
        inside = dict(zip(unique_bins.tolist(), self.values_in(unique_bins), strict=True))
        return np.array([inside[b].at_rank(r - cum[b]) for b, r in zip(bins.tolist(), ranks.tolist(), strict=True)],
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


class HistogramBuilder:
    """Counts blocks of values into fine bins as they stream by."""

    def __init__(self, lo: float, hi: float, bins: int = DEFAULT_FINE_BINS, keep: bool = True,
                 spacing: Spacing = "linear", grid: float | None = None) -> None:
        self.bin_map = BinMap(spacing, lo, hi, bins)
        self.bins, self.keep = bins, keep
        # Values on a grid (integers: step 1; dates as microseconds: one day) on bins narrower than the
        # step: each inner bin can hold one grid point only, found from the bin's edges without looking
        # at the data. (1.001: a margin for the rounding of the bin arithmetic.)
        self.grid = grid if grid is not None and spacing == "linear" and self.bin_map.scale * grid >= 1.001 \
            else None
        self.dtype = index_dtype(bins)
        self.counts = np.zeros(bins + 2, dtype=np.int64)
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.n = 0
        # Blocks stay cache-sized, except with many bins, where one bincount's output per block
        # (``bins`` counters) would cost more than counting the block.
        self._scratch = np.empty(max(BLOCK, 2 * bins), dtype=np.float64)
        if bins + 2 > np.iinfo(self.dtype).max:
            raise ValueError(f"too many fine bins: {bins}")

    @classmethod
    def like(cls, hist: FineHistogram, grid: float | None = None) -> HistogramBuilder:
        """A builder counting into the same bins as ``hist`` (a compared sample on the reference's bins)."""
        m = hist.bin_map
        return cls(m.lo, m.hi, m.bins, spacing=m.spacing, grid=grid)

    def add(self, values: np.ndarray, missing: np.ndarray | None = None) -> None:
        """Count ``values`` (float64); they are kept (not copied) for later refinement.

        ``missing`` (a mask, or None) marks values that are not values at all (nulls, NaN): they get
        the bin number ``bins + 2``, which is never counted nor picked, so a column with nulls is
        kept as Arrow's own buffer instead of a compacted copy.
        """
        step = self._scratch.size
        for start in range(0, values.size, step):
            block = values[start:start + step]
            index = self.bin_map.index(block, self.dtype, self._scratch)
            if missing is not None:
                index[missing[start:start + step]] = self.bins + 2
            counts = np.bincount(index, minlength=self.bins + 3)
            self.counts += counts[: self.bins + 2]
            self.n += int(block.size - counts[self.bins + 2:].sum())
            if self.keep:
                self.blocks.append((block, index))

    def finish(self) -> FineHistogram:
        hist = FineHistogram(bin_map=self.bin_map, counts=self.counts, blocks=self.blocks, n=self.n)
        if self.grid is not None:  # inner bins: the one grid point each can hold; the outer ones are probed
            g = self.grid
            hist._state = np.zeros(self.bins + 3, dtype=np.int8)
            hist._one = np.full(self.bins + 3, np.nan)
            inner = np.flatnonzero(self.counts[1: self.bins + 1]) + 1
            found = np.zeros(inner.size, dtype=bool)
            first = np.ceil((self.bin_map.lo + (inner - 1) / self.bin_map.scale) / g) * g  # lower edge, rounded up
            for step in (0.0, -g, g):  # the edge arithmetic may be off by one step: the map decides
                guess = first + step
                ok = ~found & (hist.bin_of(guess) == inner)
                hist._one[inner[ok]] = guess[ok]
                found |= ok
            hist._state[inner[found]] = _SINGLE
            empty = np.flatnonzero(self.counts[1: self.bins + 1] == 0) + 1
            hist._state[empty] = _SINGLE
        return hist


def split_spike(values: np.ndarray) -> tuple[float, np.ndarray, int]:
    """``(v, rest, copies)``: a value ``v`` making up more than half of ``values`` taken out of them (its
    ``copies``), or ``(nan, values, 0)``. The candidate is the most common value of a strided sample
    of 4 096 (a majority value is that, bar astronomically bad luck, and bad luck only costs the
    saving); one comparison pass over all values confirms it."""
    if values.size < PROBE_MIN_VALUES:
        return float("nan"), values, 0
    distinct, seen = np.unique(values[:: max(1, values.size // 4096)], return_counts=True)
    candidate = float(distinct[np.argmax(seen)])
    same = values == candidate
    copies = int(np.count_nonzero(same))
    if copies * 2 <= values.size:
        return float("nan"), values, 0
    return candidate, values[~same], copies


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
    with np.errstate(invalid="ignore"):  # inf - inf between infinite neighbours: NaN, handled below
        lo, hi = np.quantile(sample, [0.001, 0.999])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        lo, hi = float(np.min(sample)), float(np.max(sample))
        if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
            hi = lo + 1.0 if np.isfinite(lo) else 1.0
            lo = lo if np.isfinite(lo) else 0.0
    return float(lo), float(hi)


def fine_histogram(values: np.ndarray, lo: float, hi: float, bins: int = DEFAULT_FINE_BINS,
                   spacing: Spacing = "linear") -> FineHistogram:
    """Count ``values`` into ``bins`` bins over ``[lo, hi]`` plus under/overflow."""
    builder = HistogramBuilder(lo, hi, bins, spacing=spacing)
    builder.add(np.asarray(values, dtype=np.float64))
    return builder.finish()


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

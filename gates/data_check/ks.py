"""Two-sample Kolmogorov–Smirnov from fine histograms: a guaranteed interval, then exact where it matters.

``D = sup |F_current − F_reference|``. Counted into the same ordered fine bins, the difference at
the end of each bin is known exactly (``lower`` is the largest of those, and is attained); inside
a bin it can only move between two limits, so ``upper`` bounds D. A bin is a *candidate* when its
limit beats ``lower``. Candidates are resolved from their values:

- a bin where each sample holds one distinct value (or none) is resolved from its counts and
  those values, found by a probe pass that copies nothing (:meth:`FineHistogram.probe`): the
  usual case for integers, dates and other discrete columns, whose heavy values are ties;
- a bin holding several distinct values is resolved by extracting and sorting its values:
  *exact* mode does this for every candidate; *bounded* mode does not, and reports ``upper``
  with its gap ``upper − lower`` (the true D is inside; see :func:`ks_from_histograms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gates.data_check.ksdist import kstwo_sf
from gates.data_check.stats import FineHistogram, split_spike

MAX_AUTO_EXACT = 10_000  # as scipy's ks_2samp: below this sample size its exact p-value applies
# Bounded mode probes its candidate bins for single values when that could narrow the gap by more
# than this (a probe is one lookup pass per sample; below this the gap is left as stated).
PROBE_GAP = 1e-3


@dataclass
class KSResult:
    """Two-sample KS: statistic (exact, or the upper limit in bounded mode), its bounds and p-value."""

    statistic: float
    lower: float
    upper: float
    p_value: float
    exact: bool
    refined_values: int = 0  # values extracted and sorted (bins answered by the probe count none)

    @property
    def gap(self) -> float:
        """How far the reported statistic may be above the true D (0 when exact)."""
        return self.upper - self.lower


def _ends(current: FineHistogram, reference: FineHistogram) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative counts of both samples, and per bin: the difference at its end, and its inside limit."""
    n, m = current.n, reference.n
    cum_a = np.concatenate([[0.0], np.cumsum(current.counts.astype(np.float64))])
    cum_b = np.concatenate([[0.0], np.cumsum(reference.counts.astype(np.float64))])
    end = np.abs(cum_a[1:] / n - cum_b[1:] / m)
    hi_k = cum_a[1:] / n - cum_b[:-1] / m  # all of bin k's current values counted, none of the reference's
    lo_k = cum_a[:-1] / n - cum_b[1:] / m
    return cum_a, cum_b, end, np.maximum(np.abs(hi_k), np.abs(lo_k))


def ks_from_histograms(current: FineHistogram, reference: FineHistogram, *, exact: bool = True) -> KSResult:
    """KS statistic from two fine histograms on the same bins.

    Exact mode resolves every candidate bin and returns scipy's D. Bounded mode resolves only the
    candidates it can without extracting values (single-valued bins, probed when the gap exceeds
    :data:`PROBE_GAP`) and returns ``upper``: never below D, at most
    ``gap = upper − lower`` above it.
    """
    n, m = current.n, reference.n
    cum_a, cum_b, end, limit = _ends(current, reference)
    lower = float(np.max(end))
    candidates = np.flatnonzero(limit > lower)
    refined_before = current.extracted + reference.extracted
    unresolved = candidates
    if candidates.size:
        if exact:
            resolvable = candidates
        else:
            # A probe is one lookup pass per sample: worth it only when the gap it may close matters;
            # bins already known to hold one value are resolved either way.
            if float(np.max(limit[candidates])) - lower > PROBE_GAP:
                single = current.single_valued(candidates) & reference.single_valued(candidates)
            else:
                single = current.known_single(candidates) & reference.known_single(candidates)
            resolvable = candidates[single]
        if resolvable.size:
            inside = _sup_inside(resolvable, current, reference, cum_a, cum_b)
            lower = max(lower, inside)
            unresolved = np.setdiff1d(candidates, resolvable, assume_unique=True)
    upper = max(lower, float(np.max(limit[unresolved]))) if unresolved.size else lower
    refined = current.extracted + reference.extracted - refined_before
    return KSResult(statistic=upper, lower=lower, upper=upper, p_value=ks_p_value(upper, n, m),
                    exact=lower == upper, refined_values=refined)


def _sup_inside(bins: np.ndarray, current: FineHistogram, reference: FineHistogram,
                cum_a: np.ndarray, cum_b: np.ndarray) -> float:
    """The largest |F_current − F_reference| at any value inside ``bins`` (sorted bin numbers).

    Only the sample with fewer values in these bins (S) is put in order, as its distinct values
    ``u``; the other (L) is searched into ``u``, never sorted. Between two consecutive ``u`` of one
    bin, F_S is constant and F_L only grows, so |F_L − F_S| is largest at an end: at ``u_j`` itself
    (both counted up to it) or just before it (L's values below ``u_j``, S's up to ``u_{j−1}``). Past
    the last ``u`` of a bin the next end is the bin's end, known from the counts. Bins are ordered
    and every value of a later bin is greater than every value of an earlier one, so positions in
    ``u`` (all bins at once) give counts within a bin once the earlier bins' counts are taken off.
    """
    if current.entries(bins) <= reference.entries(bins):
        small, large, cum_s, cum_l = current, reference, cum_a, cum_b
    else:
        small, large, cum_s, cum_l = reference, current, cum_b, cum_a
    parts = small.values_in(bins)
    values = np.concatenate([p.values for p in parts]) if parts else np.zeros(0)
    if not values.size:
        return 0.0  # S has no value here: F_S is flat inside every bin, so the bin ends hold the extremes
    weights = np.concatenate([np.ones(p.values.size, dtype=np.int64) if p.weights is None else p.weights
                              for p in parts])
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    u, u_w = values[starts], np.add.reduceat(weights, starts)  # distinct values in order, with their counts
    u_bin = small.bin_of(u)
    slot = np.searchsorted(bins, u_bin)  # each u's bin among ``bins``
    raw, single, copies = large.gathered(bins)
    spike, raw, spike_copies = split_spike(raw)
    if spike_copies:  # a spike is searched once, with its count, instead of copy by copy
        single, copies = np.append(single, spike), np.append(copies, spike_copies)
    le = np.zeros(u.size + 1)  # L values with exactly j of the u below them
    eq = np.zeros(u.size + 1)  # L values equal to u_j
    for values_l, weights_l in ((raw, None), (single, copies)):
        pos = np.searchsorted(u, values_l, side="left")
        le += np.bincount(pos, weights=weights_l, minlength=u.size + 1)
        hit = pos < u.size
        hit[hit] = u[pos[hit]] == values_l[hit]
        eq += np.bincount(pos[hit], weights=None if weights_l is None else weights_l[hit], minlength=u.size + 1)
    le = np.cumsum(le)[: u.size]  # L values <= u_j
    eq = eq[: u.size]
    before_l = np.concatenate([[0], np.cumsum(large.counts[bins])])[slot]  # L values in earlier bins
    before_s = np.concatenate([[0], np.cumsum(small.counts[bins])])[slot]
    run_s = np.cumsum(u_w)
    f_s = cum_s[u_bin] + run_s - before_s
    f_s_prev = f_s - u_w
    f_l = cum_l[u_bin] + le - before_l
    f_l_open = f_l - eq
    n_s, n_l = small.n, large.n
    at = np.abs(f_s / n_s - f_l / n_l)
    just_before = np.abs(f_s_prev / n_s - f_l_open / n_l)
    return float(max(at.max(), just_before.max()))


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

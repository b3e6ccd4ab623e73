"""Drift of one column between a current dataset and the reference: PSI and two-sample KS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gates.base import CheckResult, Status
from gates.data_check import binmap, stats
from gates.data_check import ks as K
from gates.data_check.models import Levels

UNSEEN = "<unseen in reference>"
PLOT_BINS = 40


def judge(check_id: str, value: float, levels: Levels, message: str) -> CheckResult:
    """Status of a drift measure against warn/fail levels (>= level triggers)."""
    threshold = {"warn": levels.warn, "fail": levels.fail}
    if value is None or not np.isfinite(value):
        return CheckResult(id=check_id, status=Status.ERROR, observed=None, threshold=threshold,
                           message=message or "no values to compare")
    status = Status.PASS
    if levels.fail is not None and value >= levels.fail:
        status = Status.FAIL
    elif levels.warn is not None and value >= levels.warn:
        status = Status.WARN
    return CheckResult(id=check_id, status=status, observed=round(float(value), 12), threshold=threshold,
                       message="" if status is Status.PASS else message)


@dataclass
class NumericReference:
    """The reference side of a numeric column, prepared once for every current dataset."""

    hist: stats.FineHistogram
    edges: np.ndarray
    counts: np.ndarray


@dataclass
class CategoricalReference:
    counts: dict[Any, int]


def prepare_numeric_reference(present: list[np.ndarray], total: int, psi_bins: int, fine_bins: int,
                              grid: float | None = None) -> NumericReference:
    """Fine histogram over the reference's robust range (bins shaped by :func:`binmap.choose`), exact PSI
    edges and the reference's PSI counts. ``grid``: the step of the values' grid, if they are on one
    (integers: 1, dates as microseconds: a day)."""
    sample = stats.strided_sample(present, total)
    lo, hi = stats.range_of_sample(sample)
    bin_map = binmap.choose(sample[np.isfinite(sample)], lo, hi, fine_bins)
    builder = stats.HistogramBuilder(lo, hi, bin_map.bins, spacing=bin_map.spacing, grid=grid)
    for block in present:
        builder.add(block)
    hist = builder.finish()
    edges = stats.psi_edges(hist, psi_bins)
    return NumericReference(hist=hist, edges=edges, counts=stats.counts_between(hist, edges))


def numeric_drift(role: str, name: str, hist: stats.FineHistogram, ref: NumericReference, psi_levels: Levels,
                  ks_levels: Levels, *, exact: bool, epsilon: float,
                  row: dict[str, Any], plots: dict[tuple[str, str], dict[str, Any]]) -> list[CheckResult]:
    """PSI and KS of a current column, given its fine histogram on the reference's bins."""
    psi_id, ks_id = f"psi:{role}:{name}", f"ks:{role}:{name}"
    if hist.n == 0 or ref.hist.n == 0:
        side = "current" if hist.n == 0 else "reference"
        msg = f"{role}.{name}: the {side} column has no values to compare"
        return [judge(psi_id, float("nan"), psi_levels, msg), judge(ks_id, float("nan"), ks_levels, msg)]
    small = max(hist.n, ref.hist.n) <= K.MAX_AUTO_EXACT
    counts = stats.counts_between(hist, ref.edges)
    psi = stats.psi(counts, ref.counts, epsilon)
    refined_because = ""
    if small:
        ks = K.ks_small(hist.values, ref.hist.values)
    else:
        ks = K.ks_from_histograms(hist, ref.hist, exact=exact)
        straddled = _levels_inside(ks, ks_levels)
        if straddled:  # the bound alone could give the wrong verdict: this column is worth the exact answer
            refined_because = f"the bounded KS interval straddled the {straddled} level"
            ks = K.ks_from_histograms(hist, ref.hist, exact=True)
    row.update(psi=psi, ks=ks.statistic, ks_p_value=ks.p_value, ks_exact=ks.exact,
               ks_lower=ks.lower, ks_upper=ks.upper, ks_gap=ks.gap)
    if refined_because:
        row["ks_refined"] = refined_because
    plots[(role, name)] = {"kind": "numeric", "psi": psi, **_plot_numeric(hist, ref.hist)}
    ks_note = f"D={ks.statistic:.6f}" + ("" if ks.exact else
                                          f" (bounded: true D in [{ks.lower:.6f}, {ks.upper:.6f}], "
                                          f"at most {ks.gap:.2g} below the reported value)")
    if refined_because:
        ks_note += f" (exact: {refined_because})"
    return [
        judge(psi_id, psi, psi_levels,
              f"{role}.{name}: PSI {psi:.4f} over {ref.edges.size + 1} reference-quantile bins"),
        judge(ks_id, ks.statistic, ks_levels, f"{role}.{name}: KS {ks_note}, p={ks.p_value:.3g}"),
    ]


def _levels_inside(ks: K.KSResult, levels: Levels) -> str:
    """The name of a level the true D could be on either side of (``lower < level <= upper``), or ""."""
    if ks.exact:
        return ""
    for name, level in (("fail", levels.fail), ("warn", levels.warn)):
        if level is not None and ks.lower < level <= ks.upper:
            return name
    return ""


def categorical_drift(role: str, name: str, current: dict[Any, int], ref: CategoricalReference, psi_levels: Levels,
                      *, epsilon: float, row: dict[str, Any],
                      plots: dict[tuple[str, str], dict[str, Any]]) -> list[CheckResult]:
    """PSI over the reference's categories plus one bin for categories unseen in the reference."""
    psi_id = f"psi:{role}:{name}"
    if not current or not ref.counts:
        side = "current" if not current else "reference"
        return [judge(psi_id, float("nan"), psi_levels, f"{role}.{name}: the {side} column has no values to compare")]
    categories = sorted(ref.counts, key=str)
    unseen = {k: v for k, v in current.items() if k not in ref.counts}
    cur = np.array([current.get(c, 0) for c in categories] + [sum(unseen.values())], dtype=np.float64)
    refc = np.array([ref.counts[c] for c in categories] + [0], dtype=np.float64)
    psi = stats.psi(cur, refc, epsilon)
    row.update(psi=psi, unseen_categories=len(unseen), unseen_rows=int(sum(unseen.values())))
    plots[(role, name)] = {"kind": "categorical", "psi": psi, "labels": [str(c) for c in categories] + [UNSEEN],
                           "current": (cur / cur.sum()).tolist(), "reference": (refc / refc.sum()).tolist()}
    note = f"; {len(unseen)} categories unseen in the reference ({int(sum(unseen.values()))} rows)" if unseen else ""
    return [judge(psi_id, psi, psi_levels, f"{role}.{name}: PSI {psi:.4f} over {len(categories)} categories{note}")]


def _plot_numeric(cur: stats.FineHistogram, ref: stats.FineHistogram) -> dict[str, Any]:
    """Shares of both samples in PLOT_BINS bars over the fine range (under/overflow in the outer bars)."""
    group = max(1, cur.bins // PLOT_BINS)

    def bars(h: stats.FineHistogram) -> list[float]:
        inner = h.counts[1:-1]
        agg = inner[: group * (inner.size // group)].reshape(-1, group).sum(axis=1).astype(np.float64)
        agg[0] += h.counts[0]
        agg[-1] += h.counts[-1] + inner[group * (inner.size // group):].sum()
        return (agg / max(1, h.n)).tolist()

    edges = [cur.bin_map.lower_edge(1 + i * group) for i in range(len(bars(cur)) + 1)]
    return {"edges": edges, "current": bars(cur), "reference": bars(ref)}

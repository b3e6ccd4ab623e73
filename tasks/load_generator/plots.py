"""The evidence plots, drawn with matplotlib's Agg canvas (imported here, lazily; no pyplot, no global backend).

- latency over time: per second of every step (by intended send time), the ok answers' p50 and p99 and a red
  marker at each second with errors (their count on the right axis), a dashed line where a step starts, labelled
  with its offered rate;
- latency distribution: each step's HDR percentile curve, latency against percentile on the usual HDR axis
  (``1 / (1 - q)`` on a log scale, labelled 0 … 99.99).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from tasks.load_generator.merge import sparse

_LABELS = (0.0, 90.0, 99.0, 99.9, 99.99)


def latency_over_time(path: Path, steps: list[tuple[float, list[dict[str, Any]]]], title: str) -> None:
    """``steps``: (offered rps, timeline rows of :meth:`Collector.timeline`) in run order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    errs_ax = ax.twinx()
    offset = 0
    xs: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    ex: list[float] = []
    ey: list[int] = []
    for rate, rows in steps:
        ax.axvline(offset, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(f" {rate:g} rps", (offset, 0.98), xycoords=("data", "axes fraction"), fontsize=8,
                    va="top", ha="left", color="dimgrey")
        for row in rows:
            x = offset + row["t"] - 0.5  # the middle of its second
            xs.append(x)
            p50.append(np.nan if row["p50_ms"] is None else row["p50_ms"])
            p99.append(np.nan if row["p99_ms"] is None else row["p99_ms"])
            n_err = sum(row["errors"].values())
            if n_err:
                ex.append(x)
                ey.append(n_err)
        offset += len(rows)
    ax.plot(xs, p50, label="p50", color="tab:blue", marker=".", linewidth=1)
    ax.plot(xs, p99, label="p99", color="tab:orange", marker=".", linewidth=1)
    if ex:
        errs_ax.scatter(ex, ey, color="tab:red", marker="x", label="errors", zorder=3)
    errs_ax.set_ylabel("errors per second", color="tab:red")
    errs_ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds (intended send time, warm-up excluded)")
    ax.set_ylabel("latency (ms, from intended send)")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0, right=max(offset, 1))
    ax.set_title(title, fontsize=10, loc="left")
    fig.legend(loc="upper right", ncol=3, fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3)
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.12, top=0.92)  # fixed margins: tight_layout costs a draw
    fig.savefig(path, format="png")


def latency_distribution(path: Path, steps: list[tuple[float, HdrHistogram]], title: str) -> None:
    """``steps``: (offered rps, HDR histogram of ok latencies in µs) in run order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    grid = 1.0 - 1.0 / np.logspace(0, 4, 200)  # q from 0 to 0.9999
    for rate, hist in steps:
        if hist.get_total_count() == 0:
            continue
        values, counts = sparse(hist)
        order = np.argsort(values, kind="stable")
        values, cumulative = values[order], np.cumsum(counts[order])
        wanted = np.maximum(1, np.floor(grid * cumulative[-1] + 0.5))
        ys = values[np.minimum(np.searchsorted(cumulative, wanted), len(values) - 1)] / 1000.0
        ax.plot(1.0 / (1.0 - grid), ys, label=f"{rate:g} rps")
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - q / 100.0) for q in _LABELS])
    ax.set_xticklabels([f"{q:g}" for q in _LABELS])
    ax.set_xlim(1.0, 1e4)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, from intended send)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(path, format="png")

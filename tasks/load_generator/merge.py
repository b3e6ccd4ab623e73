"""The parent's side: per-second results of every process merged into steps, timelines and percentiles.

Each ``("second", …)`` message carries a process's HDR histograms (microseconds) for one second of one phase.
The parent adds them into one histogram per step (latency of ok answers, and the generator's lateness) and keeps,
per second, the non-zero buckets only (values and counts), enough for that second's percentiles at a small
fraction of a full histogram's memory. Percentiles follow HdrHistogram: the highest value equivalent to the
bucket where the cumulative count reaches the percentile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from tasks.load_generator.models import (
    ERROR_CLASSES,
    GeneratorStats,
    LatencyMs,
    LatenessMs,
    StepResult,
    TimelinePoint,
)
from tasks.load_generator.schedule import Phase
from tasks.load_generator.worker import new_histogram

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def _ms(us: float) -> float:
    return round(us / 1000.0, 3)


def _ms_or_none(us: float | None) -> float | None:
    return None if us is None else _ms(us)


def latency_ms(h: HdrHistogram) -> LatencyMs:
    if h.get_total_count() == 0:
        return LatencyMs()
    p50, p90, p95, p99 = (_ms(h.get_value_at_percentile(p)) for p in PERCENTILES)
    return LatencyMs(p50=p50, p90=p90, p95=p95, p99=p99, max=_ms(h.get_max_value()), mean=_ms(h.get_mean_value()))


def sparse(h: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts) of a histogram's non-empty buckets, each value the bucket's highest equivalent value."""
    counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    index = np.flatnonzero(counts)
    values = np.array([h.get_highest_equivalent_value(h.get_value_from_index(int(i))) for i in index], dtype=np.int64)
    return values, counts[index].astype(np.int64)


def sparse_percentile(values: np.ndarray, counts: np.ndarray, percentile: float) -> float | None:
    total = int(counts.sum())
    if total == 0:
        return None
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(counts[order])
    wanted = max(1, int(min(percentile, 100.0) * total / 100.0 + 0.5))  # as HdrHistogram counts it
    return float(values[order][int(np.searchsorted(cumulative, wanted))])


@dataclass
class _Second:
    sent: int = 0
    ok: int = 0
    errors: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    values: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Step:
    phase: Phase
    latency: HdrHistogram = field(default_factory=new_histogram)
    lateness: HdrHistogram = field(default_factory=new_histogram)
    seconds: dict[int, _Second] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)


class Collector:
    """Folds the workers' messages together; :meth:`steps` gives the :class:`StepResult` of each step."""

    def __init__(self, phases: list[Phase], processes: int) -> None:
        self.processes = processes
        self.phases = phases
        self._steps = {p.index: _Step(p) for p in phases}

    def add_second(self, phase: int, second: int, sent: int, ok: int, errors: tuple[int, ...], latency: bytes,
                   lateness: bytes) -> None:
        step = self._steps[phase]
        lat = HdrHistogram.decode(latency)
        step.latency.add(lat)
        step.lateness.decode_and_add(lateness)
        s = step.seconds.setdefault(second, _Second())
        s.sent += sent
        s.ok += ok
        s.errors = [a + b for a, b in zip(s.errors, errors, strict=True)]
        if lat.get_total_count():
            values, counts = sparse(lat)
            s.values.append(values)
            s.counts.append(counts)

    def add_cpu(self, process: int, shares: list[float]) -> None:
        for phase, share in zip(self.phases, shares, strict=False):
            self._steps[phase.index].cpu[process] = share

    def measured(self) -> list[_Step]:
        return [s for s in self._steps.values() if s.phase.step is not None]

    def timeline(self, step: _Step) -> list[dict[str, Any]]:
        """One row per second of the step: counts and the ok latencies' p50/p90/p99/max (ms)."""
        rows = []
        for second in range(math.ceil(step.phase.duration - 1e-9)):
            s = step.seconds.get(second, _Second())
            values = np.concatenate(s.values) if s.values else np.zeros(0, np.int64)
            counts = np.concatenate(s.counts) if s.counts else np.zeros(0, np.int64)
            pct = {p: sparse_percentile(values, counts, p) for p in (50.0, 90.0, 99.0, 100.0)}
            rows.append({"t": second + 1, "sent": s.sent, "ok": s.ok,
                         "errors": dict(zip(ERROR_CLASSES, s.errors, strict=True)),
                         **{f"{name}_ms": _ms_or_none(pct[p])
                            for name, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0))}})
        return rows

    def steps(self) -> list[StepResult]:
        out = []
        for step in self.measured():
            rows = self.timeline(step)
            sent = sum(r["sent"] for r in rows)
            ok = sum(r["ok"] for r in rows)
            errors = {k: sum(r["errors"][k] for r in rows) for k in ERROR_CLASSES}
            late = step.lateness
            lateness = (LatenessMs(p50=_ms(late.get_value_at_percentile(50)), p99=_ms(late.get_value_at_percentile(99)),
                                   max=_ms(late.get_max_value())) if late.get_total_count() else LatenessMs())
            out.append(StepResult(
                offered_rps=step.phase.rate, duration_s=round(step.phase.duration, 6), sent=sent, ok=ok,
                achieved_rps=round(ok / step.phase.duration, 3), errors=errors, latency_ms=latency_ms(step.latency),
                hdr=step.latency.encode().decode("ascii"),
                generator=GeneratorStats(processes=self.processes,
                                         cpu=[step.cpu.get(j, 0.0) for j in range(self.processes)],
                                         lateness_ms=lateness),
                timeline=[TimelinePoint(t=r["t"], sent=r["sent"], p50_ms=r["p50_ms"], p99_ms=r["p99_ms"],
                                        errors=sum(r["errors"].values())) for r in rows]))
        return out

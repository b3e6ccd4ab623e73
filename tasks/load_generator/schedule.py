"""The open-model schedule: when each request is meant to leave, and which process sends it.

A run is a list of phases back to back: the warm-up (at the first step's rate, results dropped), then one step
per offered rate (the ramp, else ``plan.rate``), each held ``plan.duration``. Phase request ``i`` is meant to
leave at ``phase.start + i / rate``; with ``n`` processes, process ``j`` sends ``i = j, j + n, j + 2n, …`` —
the rate is split evenly and the processes' sends interleave (process ``j`` starts ``j / rate`` late).
``plan.max_requests`` bounds the whole run, warm-up included: a phase that would pass it is cut short (its
``duration`` is what was scheduled) and later phases are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tasks.load_generator.models import LoadPlan


@dataclass(frozen=True)
class Phase:
    index: int  # position in the run (0-based, warm-up included)
    step: int | None  # the step it measures; None for the warm-up
    rate: float  # requests/s over all processes
    start: float  # seconds after the run's start
    duration: float
    count: int  # requests over all processes
    first_request: int  # run-wide index of its request 0 (picks the body)

    def intended(self, i: int) -> float:
        """When phase request ``i`` is meant to leave, in seconds after the run's start."""
        return self.start + i / self.rate

    def share(self, process: int, processes: int) -> int:
        """How many of the phase's requests ``process`` sends."""
        return max(0, -(-(self.count - process) // processes))


def build_phases(plan: LoadPlan) -> list[Phase]:
    rates = plan.rates()
    wanted: list[tuple[int | None, float, float]] = []
    if plan.warmup > 0:
        wanted.append((None, rates[0], plan.warmup))
    wanted += [(step, rate, plan.duration) for step, rate in enumerate(rates)]
    phases: list[Phase] = []
    budget, start, first = plan.max_requests, 0.0, 0
    for step, rate, duration in wanted:
        count = math.ceil(rate * duration - 1e-9)
        if count > budget:
            count, duration = budget, budget / rate
        if count <= 0:
            break
        phases.append(Phase(len(phases), step, rate, start, duration, count, first))
        budget -= count
        start += duration
        first += count
    return phases


def run_seconds(phases: list[Phase]) -> float:
    return phases[-1].start + phases[-1].duration if phases else 0.0

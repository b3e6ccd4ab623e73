"""Benchmark: how long a flow run takes to end with Prefect's heartbeat thread and with clearance's mend.

    .venv/bin/python bench/flow_end_bench.py --reps 10

Starts a Prefect server (SQLite, temp state; stopped at the end) and, in this one process, runs small flows
in-process — ``empty`` (returns at once), ``3 tasks`` (three task runs) and ``sleep 0.3 s`` / ``sleep 0.7 s``
(the body sleeps) — each ``--reps`` times with Prefect's own ``_send_heartbeats`` (Prefect 3.9: the heartbeat
thread sleeps in 1-s steps and the engine joins it when the body returns) and with
``tasks.flow_heartbeats.heartbeats`` (waits on its stop flag), alternating, after one warm-up of each.
Heartbeats at Prefect's default interval (180 s). Wall time from the call to the return, and this process's
CPU; medians, min–max. Prints Markdown. Not a test (a shared 2-core machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import tree_state  # noqa: E402


def flows() -> dict[str, Callable[[], Any]]:
    from prefect import flow, task

    @task(cache_policy=None, persist_result=False)
    def step(x: int) -> int:
        return x + 1

    @flow(name="bench-empty")
    def empty() -> int:
        return 1

    @flow(name="bench-tasks")
    def three_tasks() -> int:
        return step(step(step(0)))

    @flow(name="bench-sleep")
    def sleeps(seconds: float) -> int:
        time.sleep(seconds)
        return 1

    return {"empty": empty, "3 tasks": three_tasks, "sleep 0.3 s": lambda: sleeps(0.3),
            "sleep 0.7 s": lambda: sleeps(0.7)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()

    from clearance.dev import devservers

    state = Path(tempfile.mkdtemp(prefix="flow-end-bench-"))
    prefect = devservers.start_prefect(state, database="sqlite")
    os.environ.update({"PREFECT_API_URL": prefect.api_url, "PREFECT_HOME": str(state / "client"),
                       "PREFECT_LOGGING_LEVEL": "WARNING"})
    try:
        from prefect import flow_engine

        from tasks import flow_heartbeats

        flow_heartbeats.install()
        prefects = flow_heartbeats.replaced
        if prefects is None:
            sys.exit("this Prefect's _send_heartbeats is not the one clearance mends: nothing to compare")
        ways = {"Prefect's heartbeat": prefects, "clearance's mend": flow_heartbeats.heartbeats}
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        loads = [os.getloadavg()[0]]
        for rep in range(args.reps + 1):
            for name, body in flows().items():
                for way, function in ways.items():
                    flow_engine._send_heartbeats = function
                    wall, cpu = time.perf_counter(), time.process_time()
                    body()
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    if rep:  # the first round warms up
                        samples.setdefault((name, way), []).append((wall, cpu))
            loads.append(os.getloadavg()[0])
        flow_engine._send_heartbeats = flow_heartbeats.heartbeats
    finally:
        devservers.stop(prefect)

    print(f"- Tree: {tree_state()}; Python {sys.version.split()[0]}; `nproc` = {os.cpu_count()}; load average "
          f"(1 min) {min(loads):.1f}–{max(loads):.1f}; n = {args.reps} per row after one warm-up.\n")
    print("| flow | heartbeat | wall s, median | min–max | CPU s, median |")
    print("|---|---|---:|---:|---:|")
    for (name, way), values in samples.items():
        walls = [w for w, _ in values]
        print(f"| {name} | {way} | {statistics.median(walls):.3f} | {min(walls):.3f}–{max(walls):.3f} | "
              f"{statistics.median(c for _, c in values):.3f} |")


if __name__ == "__main__":
    main()

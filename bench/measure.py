"""What the benchmarks share: a timed child process (its peak memory, its result), the CPU of a process tree,
percentiles, and which checkout was measured."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def vm_hwm_mb() -> float:
    """Peak RSS of this process since exec, in MB (ru_maxrss would include the parent's pre-exec peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(tool: str, command: list[str], env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Run one timed child; the JSON object on its last line of output, or None (its error printed)."""
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        print(f"  {tool}: FAILED\n{out.stderr[-3000:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, of the children they reaped, and of their live descendants
    (with what those reaped: a run forked by clearance worker's warm-start template is the template's child)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            for child in proc.children(recursive=True):
                try:
                    c = child.cpu_times()  # with what it reaped: a run forked by a warm-start template
                    total += c.user + c.system + c.children_user + c.children_system
                except psutil.NoSuchProcess:
                    continue
        except psutil.NoSuchProcess:
            continue
    return total


def settle(pids: list[int], quiet_cpu: float = 0.03, window: float = 0.5, longest: float = 20.0) -> float:
    """Wait until these processes (a Prefect server, its PostgreSQL) are idle: under ``quiet_cpu`` CPU-s in
    ``window`` s, at most ``longest`` s. Returns the seconds waited.

    A flow run's task-run states reach the server as events, which it writes to its database after the run has
    returned: without settling, that backlog lands on whatever is measured next (on SQLite, as a locked database
    and a client retry 2 s later)."""
    began = time.monotonic()
    before = cpu_s(pids)
    while time.monotonic() - began < longest:
        time.sleep(window)
        now = cpu_s(pids)
        if now - before < quiet_cpu:
            break
        before = now
    return time.monotonic() - began


def tree_state() -> str:
    """The checkout measured: HEAD and the product files that differ from it (read-only git)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()
               if not line[3:].startswith(("bench/", "tests/"))]
    return f"HEAD {git('rev-parse', '--short', 'HEAD').strip()}" + (
        f", with uncommitted changes to {', '.join(changed)}" if changed else ", clean")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values`` by nearest rank; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def stop_everything(workers: list[Any], prefect: Any, s3: Any, state: Path) -> None:
    """End a bench: each worker's process group (it and its runs; started in a group of its own) killed, then the
    Prefect server, SeaweedFS and the state dir's PostgreSQL cluster (if any) stopped."""
    import os
    import signal

    from clearance.dev import devservers, postgres

    for proc in workers:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    devservers.stop(prefect)
    devservers.stop(s3)
    postgres.down(state)

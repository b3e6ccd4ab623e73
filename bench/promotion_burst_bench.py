"""Benchmark: many promotions waiting for sign-off at once, then a burst of approvals (issue 18).

    .venv/bin/python bench/promotion_burst_bench.py --runs 100 --workers 2 --db postgres --db sqlite

For each database it starts a local SeaweedFS and a Prefect server on that database (temp state; all
stopped at the end), two process workers on one pool, and then:

1. ``--runs`` promotions of as many models (deployment runs, the default way), each to its sign-off, where
   it is *suspended*: the memory of server (+ PostgreSQL) and workers is read when all wait, beside their
   idle footprint (read before the first run);
2. the approvals in a burst (both approvers of every run, 8 threads, through the shared intake the CLI,
   Slack and Jira call), and the time from each run's deciding decision to its ``approved`` ledger entry
   (the run's next step), p50/p95/max, and the drain time until every run has ended;
3. correctness: every run Completed, every ledger exactly started → gate → approval-requested → approved →
   promoting → promoted (none lost, none promoted twice), every pointer on 1.0.0.

Side by side, in the same run and on the same server and workers, the bare-Prefect baseline: a flow that
does nothing but suspend for input (``suspend_flow_run(wait_for_input=…)``) and is resumed with
``resume_flow_run``: its memory while suspended and its resume → running latency.

Not a test: timings on a shared 2-core machine are noisy. Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POOL = "clearance-bench"
EXPECTED = ["started", "gate", "approval-requested", "approved", "promoting", "promoted"]
BARE_FLOW = '''
from prefect import flow, get_run_logger
from prefect.flow_runs import suspend_flow_run


@flow(name="bare-suspend")
def bare_suspend(n: int) -> int:
    answer = suspend_flow_run(wait_for_input=str, timeout=3600)
    get_run_logger().info("resumed with %s", answer)
    return n
'''


@dataclass
class Outcome:
    db: str
    runs: int
    idle_mb: float = 0.0
    waiting_mb: float = 0.0
    to_suspend_s: float = 0.0
    click_to_step: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    completed: int = 0
    ledgers_ok: int = 0
    lost: list[str] = field(default_factory=list)
    locked_lines: int = 0
    bare_waiting_mb: float = 0.0
    bare_resume: list[float] = field(default_factory=list)


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes and all their descendants, in MB."""
    import psutil

    seen: dict[int, float] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                seen[p.pid] = p.memory_info().rss / 1e6
        except psutil.NoSuchProcess:
            continue
    return sum(seen.values())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def one_database(db: str, runs: int, workers: int, state: Path) -> Outcome:
    from clearance.dev import devservers, postgres
    from tasks.signing import write_key_pair

    outcome = Outcome(db=db, runs=runs)
    key = state / "clearance-service"
    write_key_pair(key)  # the service key that signs the ledger entries (the runs fail without one)
    os.environ["CLEARANCE_SERVICE_KEY_FILE"] = str(key)
    s3 = devservers.start_s3(state)
    prefect = devservers.start_prefect(state, database="postgresql" if db == "postgres" else "sqlite")
    env = devservers.service_env(devservers.Services(s3=s3, prefect=prefect))
    os.environ.update(env | {"PREFECT_HOME": str(state / "client"), "PREFECT_CLIENT_MAX_RETRIES": "20",
                             "PREFECT_LOGGING_LEVEL": "WARNING"})
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from clearance.settings import get_settings

    get_settings.cache_clear()
    procs: list[subprocess.Popen] = []
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url, PREFECT_HOME: str(state / "client")}):
            measure(outcome, state, runs, workers, procs, prefect)
    finally:
        for proc in procs:
            subprocess.run(["pkill", "-KILL", "-g", str(proc.pid)], check=False)
        devservers.stop(prefect)
        devservers.stop(s3)
        postgres.down(state)
        outcome.locked_lines = sum(Path(p).read_text(errors="replace").count("database is locked")
                                   for p in [prefect.log_path, *state.glob("worker-*.log")])
    return outcome


def measure(outcome: Outcome, state: Path, runs: int, workers: int, procs: list, prefect) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from clearance.app.deployments import ensure_work_pool, register_deployments
    from clearance.dev import postgres
    from tasks.ledger import read_ledger
    from tasks.wiring import object_store
    from tests.integration.promotion_kit import decide, many_models, start_pool_worker, wait_all

    store = object_store()
    candidates = many_models(state, store, runs)
    first = candidates[0]
    os.environ["CLEARANCE_CONFIG_DIR"] = str(first.config_dir)
    ensure_work_pool(POOL)
    register_deployments(POOL)
    (state / "bare_flow.py").write_text(BARE_FLOW)
    bare = flow.from_source(str(state), "bare_flow.py:bare_suspend")
    bare.deploy("bare-suspend", work_pool_name=POOL, ignore_warnings=True)

    for index in range(workers):
        procs.append(start_pool_worker(POOL, state / f"worker-{index}.log", clearance=True, LIMIT="8"))
    cluster = postgres.load(state)
    serving = [prefect.pid, *([cluster.pid] if cluster else []), *[p.pid for p in procs]]
    time.sleep(8)
    outcome.idle_mb = rss_mb(serving)

    # --- clearance: every run to its sign-off, suspended
    started = time.monotonic()
    run_ids = [str(run_deployment("promote-model/promote-model", timeout=0,
                                  parameters={"model": c.model, "version": "1.0.0", "initiator": "dana"}).id)
               for c in candidates]
    now = wait_all(run_ids, {"Suspended", "Completed", "Failed", "Crashed", "Cancelled"}, timeout=60 * 60)
    outcome.to_suspend_s = time.monotonic() - started
    if set(now.values()) != {"Suspended"}:
        outcome.lost = [r for r in run_ids if now.get(r) != "Suspended"]
    time.sleep(5)
    outcome.waiting_mb = rss_mb(serving)

    # --- the burst
    clicks: dict[str, float] = {}

    def approve(pair) -> None:
        cand, run_id = pair
        decide(store, cand, run_id, "sam")
        decide(store, cand, run_id, "bea")
        clicks[cand.model] = time.time()  # the deciding decision has returned (recorded and the run woken)

    burst = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(approve, zip(candidates, run_ids, strict=True)))
    final = wait_all(run_ids, {"Completed", "Failed", "Crashed", "Cancelled"}, timeout=60 * 60)
    outcome.drain_s = time.monotonic() - burst
    outcome.completed = sum(1 for r in run_ids if final.get(r) == "Completed")
    for cand in candidates:
        entries = read_ledger(store, cand.model)
        if [e.kind for e in entries] == EXPECTED:
            outcome.ledgers_ok += 1
        approved = next((e for e in entries if e.kind == "approved"), None)
        if approved is not None and cand.model in clicks:
            outcome.click_to_step.append(approved.at.timestamp() - clicks[cand.model])

    # --- bare Prefect: the same number of suspended runs of a flow that only waits, resumed the bare way
    bare_ids = [str(run_deployment("bare-suspend/bare-suspend", timeout=0, parameters={"n": i}).id)
                for i in range(runs)]
    wait_all(bare_ids, {"Suspended"}, timeout=60 * 60)
    time.sleep(5)
    outcome.bare_waiting_mb = rss_mb(serving)
    resumed: dict[str, float] = {}

    def resume(run_id: str) -> None:
        with get_client(sync_client=True) as client:
            client.resume_flow_run(UUID(run_id), run_input={"value": "ok"})
        resumed[run_id] = time.time()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(resume, bare_ids))
    wait_all(bare_ids, {"Completed", "Failed", "Crashed"}, timeout=60 * 60)
    with get_client(sync_client=True) as client:
        for run_id in bare_ids:
            history = client.read_flow_run_states(UUID(run_id))
            running = [s.timestamp for s in history if s.name == "Running" and s.timestamp]
            if running and run_id in resumed:
                outcome.bare_resume.append(max(running).timestamp() - resumed[run_id])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", action="append", choices=["postgres", "sqlite"])
    args = parser.parse_args(argv)
    results = []
    for db in args.db or ["postgres", "sqlite"]:
        state = Path(tempfile.mkdtemp(prefix=f"burst-{db}-"))
        print(f"--- {db}: {args.runs} runs, {args.workers} workers (state {state})", flush=True)
        results.append(one_database(db, args.runs, args.workers, state))
        print(results[-1], flush=True)
    print(f"\n## Promotion burst ({time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()})\n")
    print("| database | runs | to all suspended | memory idle → waiting (bare Prefect waiting) | deciding decision → "
          "approved p50 / p95 / max (bare resume → running p50 / p95) | drain | completed | ledgers exact | "
          "'database is locked' |")
    print("|---|---|---|---|---|---|---|---|---|")
    for o in results:
        print(f"| {o.db} | {o.runs} | {o.to_suspend_s:.0f} s | {o.idle_mb:.0f} → {o.waiting_mb:.0f} MB "
              f"(+{o.waiting_mb - o.idle_mb:.0f}; bare {o.bare_waiting_mb:.0f}) | "
              f"{pct(o.click_to_step, .5):.1f} / {pct(o.click_to_step, .95):.1f} / "
              f"{max(o.click_to_step, default=float('nan')):.1f} s "
              f"({pct(o.bare_resume, .5):.1f} / {pct(o.bare_resume, .95):.1f} s) | {o.drain_s:.0f} s | "
              f"{o.completed}/{o.runs} | {o.ledgers_ok}/{o.runs} | {o.locked_lines} |")
        if o.lost:
            print(f"\n{o.db}: {len(o.lost)} runs never reached their sign-off: {o.lost[:5]}…")
    if results and any(r.click_to_step for r in results):
        print("\nmedian click → step:", {r.db: round(statistics.median(r.click_to_step), 2)
                                          for r in results if r.click_to_step})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the deciding approval of a *suspended* deployment run → the run's ``approved`` ledger entry.

    .venv/bin/python bench/resume_bench.py --runs 6 --query-seconds 1

A promotion started the default way (a deployment run on a process worker) is suspended while it waits for
sign-off: no process is held. The deciding approval resumes it: the worker picks it up, starts a new process,
imports the flow module and re-runs the flow from the top; tasks that finished before the wait come from their
cache. This measures that path and, beside it, the floor Prefect itself sets on the same worker: a bare flow
(:func:`bare_suspend`, in this file) suspended with ``suspend_flow_run`` and resumed with the Prefect client.

Starts a local SeaweedFS and Prefect server (temp state) and, per phase (``calm``, then ``load``: ``--hogs``
busy-looping processes, each bounded by ``--hog-seconds``), one ``prefect worker`` with the given polling
(``PREFECT_WORKER_QUERY_SECONDS``, ``PREFECT_WORKER_PREFETCH_SECONDS``). Per phase: ``--runs`` promotions (one
model each, two gates: artifact_integrity and an advisory security_scan) are started as deployment runs and
wait, suspended, for their last approval; then one at a time ``clearance approve`` (the real CLI, as the OS user
``bea``) gives it, and:

- ``decision → approved``  from the CLI returning (decision recorded, run woken) to the ``approved`` ledger
  entry seen by polling the store every 0.05 s (the ledger's own timestamps have the store clock's 1-s grain);
- ``CPU s``                user + system CPU of the resumed run's process: the worker's reaped-children CPU
  before and after it (the sweep deployment is paused, so the worker runs nothing else);
- the bare flow: ``resume_flow_run`` returning → the resumed flow writing its marker file, and its CPU.

Not a test (timings on a shared 2-core machine are noisy); prints JSON lines and a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun
from prefect.flow_runs import suspend_flow_run

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POOL = "resume-bench"
RESUME_TIMEOUT = 600  # a new process importing Prefect takes a minute and more on an overloaded 2-core machine


@flow(name="bare-suspend")
def bare_suspend(marker: str) -> None:
    """Prefect's floor: suspend, and once resumed (the flow re-runs from the top; the suspension's key is
    already resumed, so it returns at once), write the time to ``marker``."""
    suspend_flow_run(key="bare", timeout=None)
    Path(marker).write_text(repr(time.time()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def templates(worker: Any) -> list[Any]:
    """The worker's warm-start templates (``clearance worker``): the resumed runs are *their* children."""
    import psutil

    found = []
    for child in worker.children():
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            if "clearance.app.warm_start" in child.cmdline():
                found.append(child)
    return found


def children_cpu(worker: Any) -> float:
    """User + system CPU of the run processes reaped so far: the worker's children, and its templates'."""
    total = 0.0
    for process in [worker, *templates(worker)]:
        times = process.cpu_times()
        total += float(times.children_user + times.children_system)
    return total


def wait_reaped(worker: Any, timeout: float = 60) -> None:
    """Until no run process is left (the resumed run's process ended and was waited for)."""
    deadline = time.monotonic() + timeout

    def running() -> list[Any]:
        import psutil

        try:
            kept = templates(worker)
            return [p for p in worker.children() if p not in kept] + [c for t in kept for c in t.children()]
        except psutil.Error:  # one ended while psutil walked the process table: look again
            return [worker]

    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the reaped child's CPU lands in its parent's counters when it is waited for


WORKERS = {
    "prefect": [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", POOL],
    "warm": [sys.executable, "-m", "clearance", "worker", "--pool", POOL, "--warm-start"],
    "cold": [sys.executable, "-m", "clearance", "worker", "--pool", POOL, "--cold-start"],
}


def start_worker(kind: str, query: float, prefetch: float, log: Path) -> subprocess.Popen:
    """``prefect worker start``, or ``clearance worker`` with (warm) or without (cold) its template."""
    env = dict(os.environ) | {"PREFECT_WORKER_QUERY_SECONDS": str(query),
                              "PREFECT_WORKER_PREFETCH_SECONDS": str(prefetch)}
    return subprocess.Popen(WORKERS[kind], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def one_config_dir(folder: Path, store: Any, runs: int) -> tuple[Path, list[Any]]:
    """``runs`` candidates (one model each) with their manifests in one config dir."""
    from tests.integration.promotion_kit import make_candidate
    from tests.integration.test_resume_no_rerun import POLICY_TWO_GATES

    cands = [make_candidate(folder / f"c{i}", store, policy=POLICY_TWO_GATES) for i in range(runs)]
    config_dir = cands[0].config_dir
    for cand in cands[1:]:
        shutil.copy(cand.config_dir / "models" / f"{cand.model}.yaml", config_dir / "models")
        cand.config_dir = config_dir
    return config_dir, cands


def pause_sweep() -> None:
    """The sweep's schedule would start runs on this worker between the measured ones."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            if deployment.schedules and deployment.name != "promote-model":
                client.pause_deployment(deployment.id)


def clearance_phase(store: Any, folder: Path, runs: int, worker: Any) -> list[dict[str, Any]]:
    from prefect.deployments import run_deployment

    from clearance.app.deployments import register_deployments
    from clearance.settings import get_settings
    from tasks.ledger import read_ledger
    from tests.integration.promotion_kit import cli, decide, wait_for_request, wait_state

    config_dir, cands = one_config_dir(folder, store, runs)
    os.environ["CLEARANCE_CONFIG_DIR"] = str(config_dir)
    get_settings.cache_clear()
    register_deployments(POOL)
    pause_sweep()
    run_ids = {}
    for cand in cands:
        run = run_deployment("promote-model/promote-model", timeout=0,
                             parameters={"model": cand.model, "version": "1.0.0", "initiator": "dana"})
        run_ids[cand.model] = str(cast(FlowRun, run).id)  # sync context: never the coroutine
    for cand in cands:
        wait_for_request(store, run_ids[cand.model], timeout=600)
        assert decide(store, cand, run_ids[cand.model], "sam").accepted
    rows = []
    for cand in cands:
        run_id = run_ids[cand.model]
        wait_state(run_id, {"PAUSED"}, timeout=RESUME_TIMEOUT)
        wait_reaped(worker)
        cpu0 = children_cpu(worker)
        started = time.time()
        done = cli(cand, "bea", "approve", run_id, "--comment", "bench")
        t0 = time.time()
        assert done.returncode == 0, done.stdout + done.stderr
        while not any(e.kind == "approved" for e in read_ledger(store, cand.model)):
            if time.time() - t0 > RESUME_TIMEOUT:
                raise TimeoutError(f"run {run_id}: no approved entry after {RESUME_TIMEOUT} s")
            time.sleep(0.05)
        approved = time.time() - t0
        assert wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}, timeout=RESUME_TIMEOUT) == "COMPLETED"
        wait_reaped(worker)
        rows.append({"what": "clearance", "run": run_id, "cli": round(t0 - started, 3),
                     "decision_to_approved": round(approved, 3), "cpu": round(children_cpu(worker) - cpu0, 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bare_phase(folder: Path, runs: int, worker: Any) -> list[dict[str, Any]]:
    from uuid import UUID

    from prefect import get_client
    from prefect.deployments import run_deployment

    from tests.integration.promotion_kit import wait_state

    loaded = cast(Flow[..., None], bare_suspend.from_source(source=str(ROOT),
                                                            entrypoint="bench/resume_bench.py:bare_suspend"))
    loaded.deploy(
        name="bare", work_pool_name=POOL, job_variables={"working_dir": str(ROOT)}, build=False, push=False,
        print_next_steps=False)
    folder.mkdir(parents=True, exist_ok=True)
    markers = {}
    for i in range(runs):
        marker = folder / f"bare-{i}.txt"
        run = run_deployment("bare-suspend/bare", timeout=0, parameters={"marker": str(marker)})
        markers[str(cast(FlowRun, run).id)] = marker
    rows = []
    for run_id, marker in markers.items():
        wait_state(run_id, {"PAUSED"}, timeout=600)
        wait_reaped(worker)
        cpu0 = children_cpu(worker)
        with get_client(sync_client=True) as client:
            client.resume_flow_run(UUID(run_id))
        t0 = time.time()
        while not marker.exists() or not marker.read_text():
            if time.time() - t0 > RESUME_TIMEOUT:
                raise TimeoutError(f"bare run {run_id} did not resume in {RESUME_TIMEOUT} s")
            time.sleep(0.02)
        resumed = float(marker.read_text()) - t0
        assert wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}, timeout=RESUME_TIMEOUT) == "COMPLETED"
        wait_reaped(worker)
        rows.append({"what": "bare", "run": run_id, "decision_to_approved": round(resumed, 3),
                     "cpu": round(children_cpu(worker) - cpu0, 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def hog(count: int, seconds: float) -> list[subprocess.Popen]:
    """``count`` busy-looping processes, each ending by itself after ``seconds`` at the latest."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    latency = [r["decision_to_approved"] for r in rows]
    cpu = [r["cpu"] for r in rows]
    return {"n": len(rows), "p50": statistics.median(latency), "p95": percentile(latency, 95),
            "max": max(latency), "cpu_p50": statistics.median(cpu), "cpu_max": max(cpu)}


def run_phases(args: argparse.Namespace, state: Path, psutil: Any
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Every phase: its worker (and hogs), the clearance runs, then the bare ones; the rows and summaries."""
    from clearance.app.deployments import ensure_work_pool
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    get_settings.cache_clear()
    store = ObjectStore.from_settings(get_settings())
    ensure_work_pool(POOL)
    results: dict[str, dict[str, float]] = {}
    every: list[dict[str, Any]] = []
    for phase, kind in [(p, w) for p in args.phases.split(",") for w in args.workers.split(",")]:
        hogs = hog(args.hogs, args.hog_seconds) if phase == "load" else []
        proc = start_worker(kind, args.query_seconds, args.prefetch_seconds, state / f"worker-{phase}-{kind}.log")
        time.sleep(5 if kind == "warm" else 0)  # its template imports Prefect and the flows once
        try:
            worker = psutil.Process(proc.pid)
            load = os.getloadavg()[0]
            kinds = args.kinds.split(",")
            if "clearance" in kinds:
                rows = clearance_phase(store, state / f"cfg-{phase}-{kind}", args.runs, worker)
                every += [row | {"phase": phase, "worker": kind} for row in rows]
                results[f"{phase} {kind} clearance"] = summary(rows) | {"load1": load}
            if "bare" in kinds:
                load = os.getloadavg()[0]
                bare = bare_phase(state / f"bare-{phase}-{kind}", args.runs, worker)
                every += [row | {"phase": phase, "worker": kind} for row in bare]
                results[f"{phase} {kind} bare"] = summary(bare) | {"load1": load}
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            for p in hogs:
                p.kill()
                p.wait()
    return every, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--query-seconds", type=float, default=1.0, help="PREFECT_WORKER_QUERY_SECONDS")
    parser.add_argument("--prefetch-seconds", type=float, default=10.0, help="PREFECT_WORKER_PREFETCH_SECONDS")
    parser.add_argument("--phases", default="calm,load")
    parser.add_argument("--kinds", default="clearance,bare", help="which runs each phase measures")
    parser.add_argument("--workers", default="prefect,warm",
                        help="which workers each phase runs: prefect (prefect worker start), warm (clearance "
                             "worker, runs forked from its template), cold (clearance worker --cold-start)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="busy processes in the load phase")
    parser.add_argument("--hog-seconds", type=float, default=900, help="each hog ends by itself after this")
    parser.add_argument("--json", type=Path, help="write every row here too")
    args = parser.parse_args()

    import psutil

    from clearance.dev import devservers
    from tasks.signing import write_key_pair

    state = Path(tempfile.mkdtemp(prefix="resume-bench-"))
    s3 = devservers.start_s3(state)
    prefect = devservers.start_prefect(state)
    write_key_pair(state / "service-key")
    os.environ.update({
        "CLEARANCE_S3_ENDPOINT_URL": s3.endpoint_url, "CLEARANCE_S3_REGION": s3.region,
        "CLEARANCE_S3_ACCESS_KEY_ID": s3.access_key_id, "CLEARANCE_S3_SECRET_ACCESS_KEY": s3.secret_access_key,
        "CLEARANCE_BUCKET": s3.bucket, "PREFECT_API_URL": prefect.api_url,
        "CLEARANCE_PREFECT_API_URL": prefect.api_url, "PREFECT_HOME": str(state / "prefect-client"),
        "CLEARANCE_SERVICE_KEY_FILE": str(state / "service-key"), "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_CLIENT_MAX_RETRIES": "20",
    })
    # Prefect read its settings when this module imported it: point this process at the server as well.
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url,
                                         PREFECT_HOME: str(state / "prefect-client")}):
            every, results = run_phases(args, state, psutil)
    finally:
        devservers.stop(prefect)
        devservers.stop(s3)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": every,
                                         "summary": results}, indent=1))
    print()
    print(f"worker: PREFECT_WORKER_QUERY_SECONDS={args.query_seconds:g}, "
          f"PREFECT_WORKER_PREFETCH_SECONDS={args.prefetch_seconds:g}")
    print("| phase | worker | run | n | decision → resumed/approved p50 s | p95 s | max s | CPU s p50 | CPU s max |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, s in results.items():
        phase, kind, what = name.split()
        print(f"| {phase} (load {s['load1']:.1f}) | {kind} | {what} | {s['n']:.0f} | {s['p50']:.2f} | {s['p95']:.2f} | "
              f"{s['max']:.2f} | {s['cpu_p50']:.2f} | {s['cpu_max']:.2f} |")


if __name__ == "__main__":
    main()

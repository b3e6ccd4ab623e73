"""Benchmark: one re-certification schedule tick, drained by process workers (issue 18, item 3).

    .venv/bin/python bench/recertification_tick_bench.py --models 1000 --tick 50 --workers 2 --db postgres

What `bench/recertification_schedules_bench.py` does not measure: what happens when the schedule fires. Starts a
local SeaweedFS and a Prefect server on ``--db`` (temp state; all stopped at the end) and:

1. writes ``--models`` manifests on one re-certifying tier (weekly cron, gate ``artifact_integrity``,
   ``on_failure: notify``) and one production pointer each, and syncs their ``recertify-model/<model>``
   deployments with ``sync_recertification_deployments`` (the product path; its time and calls are printed,
   not the point here: see the schedules bench). ``--tick`` of the models are really in production (their
   artifact copied under ``production/``, pinned with its true digest), so their re-certification passes;
2. starts ``--workers`` ``clearance worker`` processes on the pool (1-s polling, as the burst bench);
3. makes one tick: for ``--tick`` deployments a flow run scheduled at the *same* instant (``--lead`` seconds
   ahead), created with the deployment's ``create_flow_run_from_deployment`` and a ``Scheduled`` state (what
   Prefect's scheduler inserts for a cron tick), and waits until all ended;
4. reports the drain (the tick → the last run's end, server timestamps), runs/min, start lateness (tick → each
   run's start) p50/p95/max, CPU per run (workers and every flow-run process they reaped, ``psutil``), server
   CPU, each run's outcome and ledger entry, and Prefect API calls: of this process (tick creation) by
   patching ``httpx`` here, and of the workers and every flow-run process by a ``sitecustomize`` put on their
   ``PYTHONPATH`` (it patches ``httpx`` when imported and writes its counts per process, by method and path), and
   the events each process emits over Prefect's events websocket (task-run states travel that way in Prefect 3),
   counted at ``EventsClient.emit``, by event name.

The whole tick (1,000 runs) is not run: each run is a new Python process (~4 CPU-s and more), ~70 CPU-minutes on
this machine. What is reported for 1,000 is an **extrapolation** from ``--tick`` runs, and says so.

Not a test: timings on a shared 2-core machine are noisy. Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_s, pct, stop_everything, tree_state  # noqa: E402

POOL = "clearance-tick"
TIER_CRON = "0 6 * * 1"
RECERTIFICATION = {"schedule": TIER_CRON, "timezone": "UTC", "validity": "90d", "on_failure": "notify",
                   "gates": [{"id": "artifact_integrity", "config": {"allowed_formats": ["joblib"]}}]}
PRINCIPALS = [{"id": "dana", "email": "dana@example.com", "local_users": ["dana"], "roles": []}]
FAKE_JOBLIB = b"\x80\x05\x95"
ENDED = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

#: Put on the workers' PYTHONPATH: counts every httpx request of every process they (and their runs) are, per
#: process, into $CLEARANCE_BENCH_HTTP_DIR/<pid>.json (written at most every 0.5 s while counting, and at exit; no
#: thread: clearance worker's warm-start template refuses to fork once a thread exists). httpx is patched only
#: when something imports it, so a process that never talks HTTP pays nothing.
SITECUSTOMIZE = r'''
import os, sys
_DIR = os.environ.get("CLEARANCE_BENCH_HTTP_DIR")
if _DIR:
    import importlib.abc, importlib.util, re

    _UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    _counts = {}
    _state = {"dirty": False}

    def _flush():
        import json
        if not _state["dirty"]:
            return
        _state["dirty"] = False
        tmp = os.path.join(_DIR, f".{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            json.dump({"pid": os.getpid(), "argv": sys.argv[:6], "paths": dict(_counts)}, fh)
        os.replace(tmp, os.path.join(_DIR, f"{os.getpid()}.json"))

    def _bump(key):
        import time
        _counts[key] = _counts.get(key, 0) + 1
        _state["dirty"] = True
        if time.monotonic() - _state.get("flushed", 0.0) > 0.5:  # no thread: a warm-start template refuses those
            _state["flushed"] = time.monotonic()
            try:
                _flush()
            except Exception:
                pass

    def _count(request):
        _bump(request.method + " " + _UUID.sub("{id}", request.url.path))

    def _patch(httpx):
        import atexit
        sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

        def send(self, request, *args, **kwargs):
            _count(request)
            return sync_send(self, request, *args, **kwargs)

        async def asend(self, request, *args, **kwargs):
            _count(request)
            return await async_send(self, request, *args, **kwargs)

        httpx.Client.send, httpx.AsyncClient.send = send, asend
        atexit.register(_flush)

    def _patch_events(module):
        base = getattr(module, "EventsClient", None)
        if base is None:
            return
        original = base.emit

        async def emit(self, event):
            _bump("WS event " + str(getattr(event, "event", "?")))
            return await original(self, event)

        base.emit = emit

    _TARGETS = {"httpx": _patch, "prefect.events.clients": _patch_events}

    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name not in _TARGETS:
                return None
            patch = _TARGETS.pop(name)
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                if _TARGETS:
                    sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            loader, original = spec.loader, spec.loader.exec_module

            def exec_module(module):
                original(module)
                patch(module)

            loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Hook())
'''


class HttpCounter:
    """Counts every request any httpx client of this process sends (sync and async)."""

    def __init__(self) -> None:
        import httpx

        self.calls = 0
        counter = self
        sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            counter.calls += 1
            return sync_send(self, request, *args, **kwargs)

        async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            counter.calls += 1
            return await async_send(self, request, *args, **kwargs)

        httpx.Client.send = send  # type: ignore[method-assign]
        httpx.AsyncClient.send = asend  # type: ignore[method-assign]


@dataclass
class Result:
    db: str
    models: int
    tick: int
    workers: int
    limit: int
    sync_s: float = 0.0
    sync_calls: int = 0
    scheduled_before: int = 0
    create_s: float = 0.0
    create_calls: int = 0
    drain_s: float = float("nan")
    ended: int = 0
    last_end_s: float = float("nan")
    lateness: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    recertified: int = 0
    workers_cpu: float = 0.0
    server_cpu: float = 0.0
    worker_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    run_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    run_processes: int = 0
    load: dict[str, float] = field(default_factory=dict)
    locked: int = 0
    warm_starts: int = 0
    #: CPU-s per second of the idle workers (polling, sweep), read over the settle period before the tick
    idle_cpu_rate: float = 0.0
    wall_s: float = 0.0
    note: str = ""


def http_counts(folder: Path, pids: set[int] | None = None, exclude: set[int] | None = None
                ) -> tuple[collections.Counter[str], int]:
    """Summed per-path counts of the processes' files in ``folder`` (only ``pids``, or all but ``exclude``)."""
    total: collections.Counter[str] = collections.Counter()
    processes = 0
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = int(data["pid"])
        if (pids is not None and pid not in pids) or (exclude and pid in exclude):
            continue
        processes += 1
        total.update(data["paths"])
    return total, processes


def write_configs(root: Path, store: Any, models: list[str], ticked: set[str]) -> None:
    """Manifests of every model on the re-certifying tier and a pointer each; the ``ticked`` ones really in
    production (artifact copied under production/, pinned with its digest), the others with a placeholder pin."""
    from clearance.core.keys import candidate_key, pointer_key, production_key
    from tasks.promotion import ProductionPointer
    from tests.integration.promotion_kit import write_recertification_configs

    write_recertification_configs(root, models, RECERTIFICATION, principals=PRINCIPALS)

    def one(model: str) -> None:
        source = candidate_key(model, "1.0.0", "model.joblib")
        target = production_key(model, "1.0.0", source)
        if model in ticked:
            body = FAKE_JOBLIB + f"{model}:1.0.0:".encode() + os.urandom(256)
            digest = hashlib.sha256(body).hexdigest()
            store.put_if_absent(target, body)
            path = root / "models" / f"{model}.yaml"
            manifest = yaml.safe_load(path.read_text())
            manifest["versions"]["1.0.0"]["artifacts"] = [{"key": source, "sha256": digest, "size": len(body),
                                                           "format": "joblib"}]
            path.write_text(yaml.safe_dump(manifest))
        else:
            digest = "0" * 64
        pointer = ProductionPointer(model=model, version="1.0.0", artifact_digest=digest, artifacts={target: digest},
                                    run_id="bench-seeded")
        store.put_if_match(pointer_key(model), pointer.model_dump_json().encode(), None)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, models))


def run(args: argparse.Namespace, state: Path) -> Result:
    from clearance.dev import devservers
    from tasks.signing import write_key_pair

    result = Result(db=args.db, models=args.models, tick=args.tick, workers=args.workers, limit=args.limit)
    began = time.monotonic()
    key = state / "clearance-service"
    write_key_pair(key)
    counts = state / "http-counts"
    counts.mkdir()
    (state / "site").mkdir()
    (state / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    configs_dir = state / "configs"
    os.environ.update({"CLEARANCE_SERVICE_KEY_FILE": str(key), "CLEARANCE_CONFIG_DIR": str(configs_dir),
                       "CLEARANCE_CONFIG_MAX_FILES": str(args.models + 100)})
    s3 = devservers.start_s3(state)
    prefect = devservers.start_prefect(state, database="postgresql" if args.db == "postgres" else "sqlite")
    os.environ.update(devservers.service_env(devservers.Services(s3=s3, prefect=prefect))
                      | {"PREFECT_HOME": str(state / "client"), "PREFECT_CLIENT_MAX_RETRIES": "20",
                         "PREFECT_LOGGING_LEVEL": "WARNING"})
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from clearance.settings import get_settings

    get_settings.cache_clear()
    procs: list[subprocess.Popen] = []
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url, PREFECT_HOME: str(state / "client")}):
            measure(result, args, state, configs_dir, counts, procs, prefect)
    finally:
        stop_everything(procs, prefect, s3, state)
        result.locked = sum(Path(p).read_text(errors="replace").count("database is locked")
                            for p in [Path(prefect.log_path), *state.glob("worker-*.log")])
        result.warm_starts = sum(p.read_text(errors="replace").count("forked from template")
                                 for p in state.glob("worker-*.log"))
        result.wall_s = time.monotonic() - began
    return result


def measure(result: Result, args: argparse.Namespace, state: Path, configs_dir: Path, counts: Path,
            procs: list[subprocess.Popen], prefect: Any) -> None:
    import psutil
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    from clearance.app.deployments import ensure_work_pool, sync_recertification_deployments
    from clearance.config import load_config_dir
    from clearance.config.limits import ConfigLimits
    from clearance.dev import postgres
    from tasks.ledger import read_ledger
    from tasks.wiring import object_store
    from tests.integration.promotion_kit import start_pool_worker, wait_all

    counter = HttpCounter()
    store = object_store()
    models = [f"tick-{i:04d}" for i in range(args.models)]
    ticked = models[:: max(1, args.models // args.tick)][: args.tick]
    write_configs(configs_dir, store, models, set(ticked))
    configs = load_config_dir(configs_dir, ConfigLimits(max_files=args.models + 100,
                                                        max_dir_bytes=256 * 1024 * 1024))
    ensure_work_pool(POOL)
    before = counter.calls
    t0 = time.perf_counter()
    sync = sync_recertification_deployments(POOL, configs, store)
    result.sync_s, result.sync_calls = time.perf_counter() - t0, counter.calls - before
    print(f"sync: {sync.summary()} in {result.sync_s:.1f} s", flush=True)

    site = str(state / "site")
    for index in range(args.workers):
        procs.append(start_pool_worker(POOL, state / f"worker-{index}.log", clearance=True, LIMIT=str(args.limit),
                                       PYTHONPATH=os.pathsep.join([site, os.environ.get("PYTHONPATH", "")]),
                                       CLEARANCE_BENCH_HTTP_DIR=str(counts)))
    cluster = postgres.load(state)
    server = [prefect.pid, *([cluster.pid] if cluster else [])]
    worker_pids = [p.pid for p in procs]
    time.sleep(max(0.0, args.settle - 10))  # start-up: imports, the warm-start template's preload, a first sweep
    idle0, idle_t = cpu_s(worker_pids), time.monotonic()
    time.sleep(10)
    result.idle_cpu_rate = (cpu_s(worker_pids) - idle0) / (time.monotonic() - idle_t)
    idle_children = sum(len(psutil.Process(pid).children(recursive=True)) for pid in worker_pids)
    with get_client(sync_client=True) as client:
        result.scheduled_before = client.count_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
        deployments = {}
        names = [f"{m}" for m in ticked]
        for start in range(0, len(names), 200):
            for d in client.read_deployments(deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=names[start:start + 200])), limit=200):
                deployments[d.name] = d.id
    print(f"{result.scheduled_before} runs already scheduled by Prefect's scheduler (future ticks)", flush=True)
    missing = [m for m in ticked if m not in deployments]
    if missing:
        raise RuntimeError(f"no deployment for {missing[:5]}")
    worker_counts_before, _ = http_counts(counts, pids=set(worker_pids))
    result.load["before"] = os.getloadavg()[0]

    # --- the tick: every ticked model's run scheduled at the same instant
    cpu0, server0 = cpu_s(worker_pids), cpu_s(server)
    tick = datetime.now(UTC) + timedelta(seconds=args.lead)
    before = counter.calls
    t0 = time.perf_counter()
    with get_client(sync_client=True) as client:
        run_ids = [str(client.create_flow_run_from_deployment(deployments[m], state=Scheduled(scheduled_time=tick)).id)
                   for m in ticked]
    result.create_s, result.create_calls = time.perf_counter() - t0, counter.calls - before
    print(f"tick at {tick:%H:%M:%S}: {len(run_ids)} runs created in {result.create_s:.1f} s", flush=True)
    timeout = args.timeout
    if args.stop_by:  # end (servers stopped) by then: stop waiting ~45 s before
        hour, minute = (int(x) for x in args.stop_by.split(":"))
        now = time.gmtime()
        timeout = min(timeout, (hour * 60 + minute) * 60 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec) - 45)
        timeout = max(timeout, 1.0)
    final = wait_all(run_ids, {"Completed", "Failed", "Crashed", "Cancelled"}, timeout=timeout)
    deadline = time.monotonic() + 60  # the last processes exit and are reaped; the counters flush
    while (sum(len(psutil.Process(pid).children(recursive=True)) for pid in worker_pids) > idle_children
           and time.monotonic() < deadline):
        time.sleep(0.5)
    time.sleep(2)
    result.workers_cpu = cpu_s(worker_pids) - cpu0
    result.server_cpu = cpu_s(server) - server0
    result.load["end"] = os.getloadavg()[0]
    for name in final.values():
        result.states[name] = result.states.get(name, 0) + 1
    if any(final.get(r) not in {"Completed", "Failed", "Crashed", "Cancelled"} for r in run_ids):
        result.note = (f"not all runs ended within {timeout:.0f} s (--timeout/--stop-by): the drain figures cover "
                       "only the runs that ended")
    ends = []
    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            flow_run = client.read_flow_run(run_id)  # type: ignore[arg-type]
            if flow_run.start_time:
                result.lateness.append((flow_run.start_time - tick).total_seconds())
            if flow_run.start_time and flow_run.end_time:
                result.durations.append((flow_run.end_time - flow_run.start_time).total_seconds())
            if flow_run.end_time:
                ends.append(flow_run.end_time)
    result.ended = len(ends)
    if ends:
        result.last_end_s = (max(ends) - tick).total_seconds()
    if ends and len(ends) == len(run_ids):
        result.drain_s = result.last_end_s
    result.recertified = sum(1 for m in ticked if any(e.kind == "recertified" for e in read_ledger(store, m)))
    worker_counts_after, _ = http_counts(counts, pids=set(worker_pids))
    result.worker_calls = worker_counts_after - worker_counts_before
    result.run_calls, result.run_processes = http_counts(counts, exclude=set(worker_pids))


def report(r: Result, args: argparse.Namespace, started: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    def http(c: collections.Counter[str]) -> int:
        return sum(n for k, n in c.items() if not k.startswith("WS "))

    def ws(c: collections.Counter[str]) -> int:
        return sum(n for k, n in c.items() if k.startswith("WS "))

    per_run_calls = http(r.run_calls) / max(r.tick, 1)
    worker_total = http(r.worker_calls)
    rate = r.ended / (r.last_end_s / 60) if r.last_end_s == r.last_end_s and r.last_end_s > 0 else float("nan")
    cpu_run = r.workers_cpu / max(r.tick, 1)
    lines = [
        f"### {started}–{time.strftime('%H:%M', time.gmtime())} UTC", "",
        f"- Machine: `nproc` = {os.cpu_count()} ({cpu}), shared with other sessions; Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average (1 min) {r.load.get('before', float('nan')):.1f} before "
        f"the tick, {r.load.get('end', float('nan')):.1f} at its end.",
        f"- Command: `.venv/bin/python bench/recertification_tick_bench.py --models {r.models} --tick {r.tick} "
        f"--workers {r.workers} --limit {r.limit} --db {r.db}`; Prefect server on {r.db}.",
        f"- Tree: {tree_state()}.",
        f"- Setup (not the measurement): {r.models} `recertify-model/<model>` deployments synced in {r.sync_s:.0f} s "
        f"({r.sync_calls} API calls); Prefect's scheduler had put {r.scheduled_before} future runs "
        "(next weekly ticks) in the database by the time of the tick.", "",
        "| what | value |", "|---|---:|",
        f"| runs in the tick (all scheduled at the same instant) | {r.tick} of {r.models} deployments |",
        f"| workers (`clearance worker`, `--limit`) | {r.workers} (limit {r.limit}) |",
        f"| tick creation from this process | {r.create_s:.1f} s, {r.create_calls} API calls "
        f"({r.create_calls / max(r.tick, 1):.1f} per run) |",
        f"| tick → last run ended (drain) | {r.drain_s:.0f} s ({r.ended} of {r.tick} runs ended) |",
        f"| runs per minute | {rate:.1f} |",
        f"| tick → run started, p50 / p95 / max | {pct(r.lateness, .5):.0f} / {pct(r.lateness, .95):.0f} / "
        f"{max(r.lateness, default=float('nan')):.0f} s |",
        f"| run start → end, p50 / p95 | {pct(r.durations, .5):.1f} / {pct(r.durations, .95):.1f} s |",
        f"| final states | {', '.join(f'{k} {v}' for k, v in sorted(r.states.items()))} |",
        f"| `recertified` ledger entries | {r.recertified} / {r.tick} |",
        f"| CPU s of workers + their run processes, per run | {r.workers_cpu:.0f} total, {cpu_run:.1f} per run "
        f"(the {r.workers} idle workers alone: {r.idle_cpu_rate:.2f} CPU-s per second, read before the tick) |",
        f"| run processes forked from the warm-start template | {r.warm_starts} of {r.tick} |",
        f"| CPU s of the Prefect server (+ PostgreSQL) during the tick, per run | {r.server_cpu:.0f} total, "
        f"{r.server_cpu / max(r.tick, 1):.1f} per run |",
        f"| Prefect API calls (httpx) of the run processes, per run | {per_run_calls:.1f} "
        f"({http(r.run_calls)} from {r.run_processes} processes) |",
        f"| events emitted over the websocket by the run processes, per run | {ws(r.run_calls) / max(r.tick, 1):.1f} |",
        f"| Prefect API calls of the {r.workers} workers during the drain | {worker_total} "
        f"({worker_total / max(r.tick, 1):.1f} per run; polls included) |",
        f"| API calls per model, all counted (creation + worker + run) | "
        f"{(r.create_calls + worker_total + http(r.run_calls)) / max(r.tick, 1):.1f} HTTP requests "
        f"(+ {(ws(r.run_calls) + ws(r.worker_calls)) / max(r.tick, 1):.1f} websocket events) |",
        f"| 'database is locked' lines (server, workers) | {r.locked} |",
        f"| wall time of the whole bench | {r.wall_s:.0f} s |",
    ]
    if r.note:
        lines.append(f"\n**{r.note}**")
    top = ", ".join(f"`{path}` {n / max(r.tick, 1):.1f}" for path, n in r.run_calls.most_common(12))
    lines += ["", f"- Per run, the most frequent calls of its processes: {top}."]
    wtop = ", ".join(f"`{path}` {n}" for path, n in r.worker_calls.most_common(6))
    lines.append(f"- The workers' calls during the drain: {wtop}.")
    if rate == rate and rate > 0:
        lines.append(
            f"- **Extrapolated, not measured**: 1,000 runs of one tick at the measured {rate:.1f} runs/min would "
            f"take ~{1000 / rate:.0f} min on this machine with {r.workers} workers; at {cpu_run:.1f} CPU-s per run "
            f"that is ~{1000 * cpu_run / 60:.0f} CPU-minutes of run processes (+ ~"
            f"{1000 * r.server_cpu / max(r.tick, 1) / 60:.0f} of the server), i.e. ≥ "
            f"{1000 * (cpu_run + r.server_cpu / max(r.tick, 1)) / 60 / (os.cpu_count() or 1):.0f} min on "
            f"{os.cpu_count()} cores whatever the number of workers; and ~"
            f"{1000 * (r.create_calls + worker_total + http(r.run_calls)) / max(r.tick, 1):.0f} HTTP API calls "
            f"(+ ~{1000 * (ws(r.run_calls) + ws(r.worker_calls)) / max(r.tick, 1):.0f} events).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="models with a re-certification deployment")
    parser.add_argument("--tick", type=int, default=50, help="of them, runs in the tick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=8, help="clearance worker --limit (runs at once per worker)")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--lead", type=float, default=10, help="seconds from creating the tick's runs to the tick")
    parser.add_argument("--settle", type=float, default=30,
                        help="seconds the workers idle before the tick (their idle CPU is read over the last 10)")
    parser.add_argument("--timeout", type=float, default=1200, help="give up waiting for the drain after this")
    parser.add_argument("--stop-by", help="HH:MM (UTC, today): give up waiting in time to end by then")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    state = Path(tempfile.mkdtemp(prefix="tick-bench-"))
    print(f"state {state}", flush=True)
    result = run(args, state)
    print(result, flush=True)
    print()
    print(report(result, args, started))
    if result.lateness:
        print("\nmedian lateness:", round(statistics.median(result.lateness), 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

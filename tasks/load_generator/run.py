"""``run_load``: check the target, start one generator process per core, merge what they stream, write evidence.

Order of events: the allowlist (nothing is sent to a refused target, no process is started), the inputs (target
URL, bodies), the schedule (:mod:`schedule`), ``processes`` spawned processes (``os.cpu_count()`` by default) —
each imports its HTTP or SageMaker client and reports ready; the parent then gives all of them one start time a
moment ahead, so every process's clock runs from the same instant — their per-second results merged as they
arrive (:mod:`merge`), then the plots and the timeline JSONL written into ``evidence_dir`` with their SHA-256.

A process that fails, or a run that outlasts its schedule by more than ``timeout`` + :data:`GRACE_S`, ends the run
with ``error`` (the processes are stopped); a run is never reported from part of its processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import queue
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks.load_generator import plots
from tasks.load_generator.allowlist import check_target
from tasks.load_generator.merge import Collector
from tasks.load_generator.models import EvidenceItem, LoadPlan, LoadRun, LoadTarget
from tasks.load_generator.schedule import build_phases, run_seconds
from tasks.load_generator.worker import WorkerSpec, worker_main

log = logging.getLogger(__name__)

MAX_BODIES = 100_000
MAX_BODY_BYTES = 1024 * 1024
MAX_BODIES_TOTAL = 64 * 1024 * 1024
START_TIMEOUT_S = 120.0  # for every process to be ready
START_LEAD_S = 0.1  # the start time given to the processes: this far ahead of "all ready"
GRACE_S = 15.0

EVIDENCE_OVER_TIME = "load_test_latency_over_time.png"
EVIDENCE_DISTRIBUTION = "load_test_latency_distribution.png"
EVIDENCE_TIMELINE = "load_test_timeline.jsonl"


def allowed_hosts_setting() -> list[str]:
    from clearance.settings import get_settings

    return list(get_settings().load_test_allowed_hosts)


def _check_bodies(bodies: Sequence[bytes]) -> str | None:
    if len(bodies) > MAX_BODIES:
        return f"{len(bodies)} request bodies: at most {MAX_BODIES}"
    total = 0
    for n, body in enumerate(bodies):
        if not isinstance(body, bytes | bytearray):
            return f"request body {n} is not bytes"
        if len(body) > MAX_BODY_BYTES:
            return f"request body {n} has {len(body)} bytes: at most {MAX_BODY_BYTES}"
        total += len(body)
    if total > MAX_BODIES_TOTAL:
        return f"the request bodies hold {total} bytes: at most {MAX_BODIES_TOTAL} together"
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_load(target: LoadTarget, plan: LoadPlan, bodies: Sequence[bytes], evidence_dir: Path, *,
             allowed_hosts: Sequence[str] | None = None) -> LoadRun:
    """Load ``target`` as ``plan`` says with ``bodies`` (request ``g`` of the run sends ``bodies[g % len]``).

    ``allowed_hosts`` defaults to the ``load_test_allowed_hosts`` setting. Never raises for a target, input or
    generator problem: the result says ``refused`` or ``error``.
    """
    label = target.label()
    allowed = list(allowed_hosts) if allowed_hosts is not None else allowed_hosts_setting()
    why = check_target(target, allowed)
    if why is not None:
        log.warning("load test refused: %s", why)
        return LoadRun(target=label, refused=why)
    problem = _check_bodies(bodies)
    if problem is not None:
        return LoadRun(target=label, error=problem)
    pool = [bytes(b) for b in bodies] or [b""]
    phases = build_phases(plan)
    if not any(p.step is not None for p in phases):
        return LoadRun(target=label, error=f"max_requests ({plan.max_requests}) leaves nothing after the warm-up")
    processes = plan.processes or os.cpu_count() or 1
    specs = [WorkerSpec(process=j, processes=processes, phases=phases, kind=target.kind, url=target.url or "",
                        method=target.method, headers=dict(target.headers), content_type=target.content_type,
                        timeout=plan.timeout, connections=plan.connections, bodies=pool,
                        endpoint_name=target.endpoint_name or "", region=target.region or "",
                        endpoint_url=target.endpoint_url, environ=dict(os.environ)) for j in range(processes)]
    log.info("load test of %s: %d step(s) %s rps, %d processes, %d connections each", label, len(plan.rates()),
             plan.rates(), processes, plan.connections)
    collector = Collector(phases, processes)
    error = _generate(specs, collector, run_seconds(phases) + 2 * plan.timeout + GRACE_S)
    if error is not None:
        return LoadRun(target=label, error=error)
    steps = collector.steps()
    try:
        evidence = _write_evidence(collector, Path(evidence_dir), label)
    except OSError as exc:
        return LoadRun(target=label, steps=steps, error=f"could not write the evidence into {evidence_dir}: {exc}")
    return LoadRun(target=label, steps=steps, evidence=evidence)


def _context() -> Any:
    """forkserver where there is one (a fork of a server that has imported the worker: fast, and safe in a
    parent with threads), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tasks.load_generator.worker", "httptools", "uvloop"])
        return ctx
    return multiprocessing.get_context("spawn")


def _generate(specs: list[WorkerSpec], collector: Collector, run_for: float) -> str | None:
    """Start the processes, feed their messages to ``collector``; None, or what went wrong."""
    ctx = _context()
    results: Any = ctx.Queue()
    starts: list[Any] = [ctx.Queue() for _ in specs]
    procs = [ctx.Process(target=worker_main, args=(spec, results, start), name=f"load-generator-{spec.process}",
                         daemon=True) for spec, start in zip(specs, starts, strict=True)]
    try:
        for p in procs:
            p.start()
        ready: set[int] = set()
        done: set[int] = set()
        deadline = time.monotonic() + START_TIMEOUT_S
        started = False
        while len(done) < len(procs):
            if not started and len(ready) == len(procs):
                t0 = time.time() + START_LEAD_S
                for start in starts:
                    start.put(t0)
                started = True
                deadline = time.monotonic() + START_LEAD_S + run_for
            try:
                msg = results.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() > deadline:
                    return ("the generator processes did not get ready in time" if not started
                            else "the generator processes did not finish in time")
                dead = [p.name for p, spec in zip(procs, specs, strict=True)
                        if not p.is_alive() and spec.process not in done]
                if dead and results.empty():
                    return f"generator process {dead[0]} ended unexpectedly"
                continue
            kind = msg[0]
            if kind == "second":
                collector.add_second(*msg[2:])
            elif kind == "ready":
                ready.add(msg[1])
            elif kind == "cpu":
                collector.add_cpu(msg[1], msg[2])
            elif kind == "done":
                done.add(msg[1])
            elif kind == "error":
                return f"generator process {msg[1]} failed: {msg[2]}"
        return None
    finally:
        for start in starts:  # a process still waiting for its start time gives up
            start.put(None)
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for q in [results, *starts]:
            q.close()
            q.cancel_join_thread()


def _write_evidence(collector: Collector, evidence_dir: Path, label: str) -> list[EvidenceItem]:
    evidence_dir.mkdir(parents=True, exist_ok=True)
    steps = collector.measured()
    timelines = [(s.phase.rate, collector.timeline(s)) for s in steps]
    timeline_path = evidence_dir / EVIDENCE_TIMELINE
    with timeline_path.open("w", encoding="utf-8") as f:
        for n, (rate, rows) in enumerate(timelines):
            for row in rows:
                f.write(json.dumps({"step": n, "offered_rps": rate, **row}, sort_keys=True) + "\n")
    over_time = evidence_dir / EVIDENCE_OVER_TIME
    plots.latency_over_time(over_time, timelines, f"latency over time — {label[:80]}")
    distribution = evidence_dir / EVIDENCE_DISTRIBUTION
    plots.latency_distribution(distribution, [(s.phase.rate, s.latency) for s in steps],
                               f"latency distribution — {label[:80]}")
    return [EvidenceItem(name=p.name, sha256=_sha256(p), path=str(p.resolve()))
            for p in (over_time, distribution, timeline_path)]

"""Benchmark: orchestration overhead of a promotion with five gates vs a bare Prefect flow (issue 18, item 4).

    .venv/bin/python bench/orchestration_overhead_bench.py --reps 5 --db sqlite

Starts a local SeaweedFS and a Prefect server (temp state; both stopped at the end) and ``clearance serve-model``
on a loopback port, and builds ``--reps`` + 1 models from the demo's candidate (clearance/dev/demo.py: a trained
classifier, train / eval / predictions Parquet with contracts, pinned requirements, lineage, model card), each
uploaded under ``candidates/<model>/1.0.0/``, on a copy of the shipped high tier (configs/policies/high.yaml) with
its gates in their order — artifact_integrity, data_check, security_scan, load_test, cost, compliance_review — and
these changes only: no sign-off (``approvals.roles: {}``: a promotion goes straight from the gates to production),
``on_warn: continue`` and ``assurance: claimed`` (so nothing waits for a person), and a short load test (``--rate``
requests/s for ``--load-seconds``, 0.5 s warm-up; lenient latency levels: the bench judges the orchestration, not
the endpoint). Then, in this one process, alternating, ``--reps`` times each (after one warm-up of each, not
counted):

- ``promotion``: ``flows.promote.promote_model(...)`` called directly (an in-process flow run: ~30 tasks, evidence
  and ledger in the store, the production copy and pointer move), one fresh model per repetition;
- ``bare flow``: a bare ``@flow`` whose body is :func:`gate_work`: the same gate functions (``gates.base.run_gate``)
  on the same inputs, made by the same library functions the promotion's tasks wrap (``observe_artifacts``,
  ``locate_datasets``, ``fetch_candidate_files``, ``read_promotion_postures``, ``read_champion``,
  ``fetch_model_card``, ``run_load_test``), plain calls, no tasks, nothing written to the store;
- ``bare flow, tasks``: the same with each of those steps and each gate a Prefect task run (no cache, no persisted
  result): how one would write it in Prefect, and the engine's per-task cost beside the promotion's ~40 tasks;
- ``no Prefect``: :func:`gate_work` called as a plain function.

Per variant: wall time (until the call returns) and CPU (this process, ``time.process_time`` plus reaped children
such as load-generator processes; the Prefect server, read once it is idle again after the run: see
:func:`bench.measure.settle`; SeaweedFS), medians; the ratio promotion / bare flow (target ≤ 1.5×). Each variant's
gate verdicts are checked to be the same. Not a test (a shared 2-core machine is noisy). Prints Markdown.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_s, settle, tree_state  # noqa: E402

VERSION = "1.0.0"
ORDER = ("promotion", "bare flow", "bare flow, tasks", "no Prefect")


@dataclass
class Sample:
    variant: str
    wall: float
    cpu: float
    server_cpu: float
    s3_cpu: float
    gates: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    #: promotion only: its task runs, and their summed run time, of the gate work (gate-*, load-test and the
    #: tasks making the gates' inputs) and of everything else
    tasks: int = 0
    #: promotion only: the Prefect artifacts its run created (gate results, ledger heads for the witness, report)
    artifacts: int = 0
    gate_task_s: float = 0.0
    other_task_s: float = 0.0
    #: promotion only: seconds per task name (its run-name suffix dropped), summed over its runs
    by_task: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RetryCount(logging.Handler):
    """Counts the requests Prefect's client retried (its debug line "... Another attempt will be made in N s")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Another attempt will be made" in message:
            self.seen.append(message.split(". Another")[0][:80])


def own_cpu() -> float:
    """CPU of this process (all threads) and of the children it reaped (load-generator processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def build_configs(state: Path, store: Any, models: list[str], endpoint: str, rate: float, seconds: float) -> Path:
    """A copy of configs/ (no example model) with the high tier adjusted (module docstring) and one manifest per
    model: the demo's candidate uploaded under each model's candidates/ prefix."""
    from clearance.core import keys
    from clearance.dev import demo

    target = state / "configs"
    shutil.copytree(ROOT / "configs", target, ignore=shutil.ignore_patterns("schemas"))
    for old in (target / "models").glob("*.yaml"):
        old.unlink()
    policy_path = target / "policies" / "high.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    policy["approvals"]["roles"] = {}
    policy["approvals"]["assurance"] = "claimed"
    policy["on_warn"] = "continue"
    for gate in policy["gates"]:
        if gate["id"] == "load_test":
            gate["config"].update({
                "rate": rate, "duration": f"{seconds:g}s", "warmup": "0.5s", "timeout": "1s",
                "connections": 8, "generator": {"max_cpu": 1.0, "max_lateness_p99_ms": 200},
                "slo": {"p50_ms": {"warn": 600, "fail": 950}, "p95_ms": {"warn": 900, "fail": 990},
                        "p99_ms": {"warn": 950, "fail": 999}, "max_ms": None,
                        "error_rate": {"warn": 0.001, "fail": 0.01},
                        "min_achieved_ratio": {"warn": 0.9, "fail": 0.5}}})
    policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
    print("gates:", [g["id"] for g in policy["gates"]], flush=True)

    bodies = demo.demo_files()
    card = demo.model_card_markdown().encode()
    template = demo.example_manifest()
    for model in models:
        files = {name: (keys.candidate_key(model, VERSION, name), body) for name, body in bodies.items()}
        files["MODEL_CARD.md"] = (keys.candidate_key(model, VERSION, "MODEL_CARD.md"), card)
        for key, body in files.values():
            store.put_if_absent(key, body, content_type="application/octet-stream")
        manifest = copy.deepcopy(template)
        manifest["name"] = model
        manifest["serving_endpoint"] = endpoint
        manifest["serving"] = demo.demo_serving()
        key, body = files["model.joblib"]
        datasets = [{"role": role, "uri": files[f"{role}.parquet"][0],
                     "sha256": hashlib.sha256(files[f"{role}.parquet"][1]).hexdigest(),
                     "contract": demo.example_contract(role)} for role in ("train", "eval", "predictions")]
        manifest["versions"] = {VERSION: {
            "artifacts": [{"key": key, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                           "format": "joblib"}],
            "datasets": datasets, "requirements": files["requirements.txt"][0],
            "model_card": files["MODEL_CARD.md"][0],
            "lineage": {"code_revision": demo.code_revision(), "training_run": f"bench:{model}"},
            "evaluation": demo.example_version()["evaluation"]}}
        (target / "models" / f"{model}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return target


def plain(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One step of :func:`gate_work` as a plain call."""
    return fn(*args, **kwargs)


def as_task(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One step of :func:`gate_work` as a Prefect task run (no cache, no persisted result: the bare minimum)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name=name, cache_policy=NO_CACHE, persist_result=False)(fn)(*args, **kwargs)


def gate_work(model: str, version: str = VERSION, step: Callable[..., Any] = plain) -> dict[str, str]:
    """The promotion's gates on the same inputs, made by the library functions its tasks wrap; no writes to the
    store. Each input maker and each gate is one ``step`` (a plain call, or a task run). Gate id → status."""
    from clearance.config import load_config_dir
    from clearance.config.schema import GateMode
    from clearance.settings import get_settings
    from gates.base import GateInputs, GateResult, run_gate
    from gates.waivers import apply_waivers
    from tasks.candidate_digest import observe_artifacts
    from tasks.candidate_files import fetch_candidate_files, fetch_model_card
    from tasks.champion import read_champion
    from tasks.datasets import locate_datasets
    from tasks.load_test import _locate_body_dataset, run_load_test
    from tasks.promotion import read_pointer
    from tasks.storage_posture import read_promotion_postures
    from tasks.wiring import object_store

    settings = get_settings()
    configs = step("load-configs", load_config_dir, settings.config_dir)
    manifest = configs.manifests[model]
    policy = configs.effective_policy(model)
    entry = manifest.versions[version]
    store = object_store(settings)
    folder = Path(tempfile.mkdtemp(prefix="bare-gates-"))
    try:
        evidence = folder / "evidence"
        extra: dict[str, Any] = {"evidence_dir": str(evidence)}
        if policy.gate("security_scan"):
            files = step("fetch-candidate-files", fetch_candidate_files, store, model, version, entry,
                         folder / "candidate")
            extra |= files.gate_extra(str(settings.advisory_db) if settings.advisory_db else None,
                                      settings.advisory_max_age.total_seconds())
            postures = step("read-storage-posture", read_promotion_postures, settings)
            extra["storage_posture"] = [p.model_dump(mode="json") for p in postures]
        if policy.gate("compliance_review"):
            extra["regulatory_tags"] = list(policy.regulatory_tags)
            regulatory = configs.regulatory_map_json()
            if regulatory is not None:
                extra["regulatory_map"] = regulatory
            seen = step("read-pointer", read_pointer, store, policy.promotion.prefix, model)
            extra["champion"] = step("read-champion", read_champion, store, policy.promotion.prefix, model, version,
                                     seen)
            extra |= step("fetch-model-card", fetch_model_card, store, entry.model_card)
        prices = configs.price_table_json()
        if policy.gate("cost") and prices is not None:
            extra["price_table"] = prices
        datasets = step("locate-datasets", locate_datasets, entry, settings) if entry.datasets else {}
        inputs = GateInputs(model=model, version=version, manifest=manifest.model_dump(mode="json"),
                            artifacts=step("observe-candidate", observe_artifacts, store, entry), datasets=datasets,
                            extra=extra)
        waivers = configs.waivers_for(model, version)
        results: list[GateResult] = []
        for spec in policy.gates:
            earlier = {r.gate_id: {"status": r.status.value, "message": r.message, "blocking": r.blocking,
                                   "metrics": dict(r.metrics)} for r in results}
            made: dict[str, Any] = {}
            if spec.id == "load_test":
                made["load_run"] = step("load-test", run_load_test, manifest, version,
                                        _locate_body_dataset(manifest, version), dict(spec.config), evidence)
            evidence.mkdir(parents=True, exist_ok=True)
            gate_inputs = inputs.model_copy(update={"extra": {**inputs.extra, **made, "earlier_gates": earlier}})
            result = step(f"gate-{spec.id}", run_gate, spec.id, gate_inputs, spec.config,
                          blocking=spec.mode is GateMode.BLOCKING)
            results.append(apply_waivers(result, waivers, model, version, now=result.finished_at))
            if results[-1].stops_promotion:
                break
        return {r.gate_id: r.status.value for r in results}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def variants(run_ids: list[str]) -> dict[str, Callable[[str], dict[str, str]]]:
    from prefect import flow

    from flows.promote import promote_model

    @flow(name="bare-gates")
    def bare_gates(model: str) -> dict[str, str]:
        return gate_work(model)

    @flow(name="bare-gates-tasks")
    def bare_gates_tasks(model: str) -> dict[str, str]:
        return gate_work(model, step=as_task)

    def promotion(model: str) -> dict[str, str]:
        result = promote_model(model=model, version=VERSION, initiator="dana")
        run_ids.append(result.run_id)
        if result.status != "promoted":
            raise RuntimeError(f"{model}: {result.status}: {result.message}")
        return {gate: status.value for gate, status in result.gates.items()}

    return {"promotion": promotion, "bare flow": bare_gates, "bare flow, tasks": bare_gates_tasks,
            "no Prefect": gate_work}


def run(args: argparse.Namespace, state: Path, loads: list[float]) -> list[Sample]:
    from clearance.dev import devservers, postgres
    from tasks.signing import write_key_pair

    key = state / "clearance-service"
    write_key_pair(key)
    s3 = devservers.start_s3(state)
    prefect = devservers.start_prefect(state, database="postgresql" if args.db == "postgres" else "sqlite")
    os.environ.update(devservers.service_env(devservers.Services(s3=s3, prefect=prefect)) | {
        "PREFECT_HOME": str(state / "client"), "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_CLIENT_MAX_RETRIES": "20", "CLEARANCE_SERVICE_KEY_FILE": str(key),
        "CLEARANCE_CONFIG_DIR": str(state / "configs"), "CLEARANCE_ADVISORY_DB": str(ROOT / "configs" / "advisories"),
        "CLEARANCE_LOAD_TEST_ALLOWED_HOSTS": "127.0.0.1"})
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from clearance.settings import get_settings

    get_settings.cache_clear()
    server = None
    try:
        from tasks.wiring import object_store

        store = object_store()
        models = [f"ovh-{i:02d}" for i in range(args.reps + 1)]
        port = free_port()
        model_file = state / "model.joblib"
        build_configs(state, store, models, f"http://127.0.0.1:{port}/predict", args.rate, args.load_seconds)
        model_file.write_bytes(store.get_bytes(f"candidates/{models[0]}/{VERSION}/model.joblib")[0])
        server = subprocess.Popen([sys.executable, "-m", "clearance", "serve-model", str(model_file), "--host",
                                   "127.0.0.1", "--port", str(port)], cwd=ROOT, stdout=open(state / "serve.log", "wb"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    said = (state / "serve.log").read_text()[-2000:]
                    raise RuntimeError(f"serve-model did not start: {said}") from None
                time.sleep(0.2)
        get_settings.cache_clear()
        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url, PREFECT_HOME: str(state / "client")}):
            return measure(args, models, prefect.pid, s3.pid, loads)
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=15)
        devservers.stop(prefect)
        devservers.stop(s3)
        postgres.down(state)


def measure(args: argparse.Namespace, models: list[str], prefect_pid: int, s3_pid: int, loads: list[float]
            ) -> list[Sample]:
    run_ids: list[str] = []
    funcs = variants(run_ids)
    retries = RetryCount()
    client_log = logging.getLogger("prefect.client")  # Prefect's client says each retry it makes, at debug level
    client_log.addHandler(retries)
    client_log.setLevel(logging.DEBUG)
    samples: list[Sample] = []
    plan = [(0, name) for name in ORDER]  # warm-up (model 0, not counted)
    for rep in range(args.reps):
        turn = ORDER[rep % len(ORDER):] + ORDER[:rep % len(ORDER)]  # rotate which goes first
        plan += [(rep + 1, name) for name in turn]
    for rep, name in plan:
        if time.time() > args.deadline:  # --stop-by: what ran so far is reported, and says so
            args.stopped = f"stopped at --stop-by before rep {rep} {name}"
            break
        model = models[rep]
        c0, s0, w0 = own_cpu(), cpu_s([prefect_pid]), cpu_s([s3_pid])
        retries.seen.clear()
        t0 = time.perf_counter()
        gates = funcs[name](model)
        wall = time.perf_counter() - t0
        settle([prefect_pid])  # the server's share (events it records after the run) is this variant's, not the next's
        sample = Sample(name, wall, own_cpu() - c0, cpu_s([prefect_pid]) - s0, cpu_s([s3_pid]) - w0, gates,
                        run_ids[-1] if name == "promotion" else "")
        if rep > 0:
            samples.append(sample)
        print(f"{'warm-up' if rep == 0 else f'rep {rep}'} {name}: {wall:.2f} s wall, {sample.cpu:.2f} CPU-s here, "
              f"{sample.server_cpu:.2f} server, {sample.s3_cpu:.2f} S3; load {os.getloadavg()[0]:.1f}; "
              f"Prefect client retries {len(retries.seen)} {retries.seen[:3]}; {gates}",
              flush=True)
        loads.append(os.getloadavg()[0])
    time.sleep(3)  # task runs reach the server as events
    task_runs(samples)
    return samples


#: The promotion's tasks that do what gate_work does (the gates and the making of their inputs).
GATE_WORK_TASKS = ("gate", "load-test", "observe-candidate", "locate-datasets", "fetch-candidate-files",
                   "read-storage-posture", "read-champion", "fetch-model-card", "load-configs")


def task_runs(samples: list[Sample]) -> None:
    """Fill each promotion sample's task-run count and time split from the Prefect API."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        for sample in samples:
            if not sample.run_id:
                continue
            of_run = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(sample.run_id)]))
            runs = client.read_task_runs(flow_run_filter=of_run, limit=200)
            sample.tasks = len(runs)
            sample.artifacts = len(client.read_artifacts(flow_run_filter=of_run, limit=200))
            for run in runs:
                seconds = run.total_run_time.total_seconds() if run.total_run_time else 0.0
                name = run.name.rsplit("-", 1)[0]
                sample.by_task[name] = sample.by_task.get(name, 0.0) + seconds
                if run.name.split("-", 1)[0] == "gate" or any(run.name.startswith(t) for t in GATE_WORK_TASKS[1:]):
                    sample.gate_task_s += seconds
                else:
                    sample.other_task_s += seconds


def report(samples: list[Sample], args: argparse.Namespace, started: str, loads: list[float]) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    by = {name: [s for s in samples if s.variant == name] for name in ORDER}

    def med(name: str, attr: str) -> float:
        values = [getattr(s, attr) for s in by[name]]
        return statistics.median(values) if values else float("nan")

    verdicts = {name: {tuple(sorted(s.gates.items())) for s in by[name]} for name in ORDER}
    same = len({v for vs in verdicts.values() for v in vs}) == 1
    lines = [f"### {started}–{time.strftime('%H:%M', time.gmtime())} UTC", "",
             f"- Machine: `nproc` = {os.cpu_count()} ({cpu}), shared with other sessions; Linux {platform.release()}, "
             f"Python {platform.python_version()}; load average (1 min) {min(loads):.1f}–{max(loads):.1f} during "
             "the run.",
             f"- Tree: {tree_state()}.",
             f"- Command: `.venv/bin/python bench/orchestration_overhead_bench.py --reps {args.reps} --db {args.db} "
             f"--rate {args.rate:g} --load-seconds {args.load_seconds:g}`; Prefect server on {args.db}; n = "
             f"{args.reps} per variant, alternating, medians (one warm-up of each not counted).",
             f"- Gates: {', '.join(next(iter(by['promotion'])).gates) if by['promotion'] else '?'}; verdicts "
             f"{'identical in every run of every variant' if same else 'DIFFER between runs: ' + str(verdicts)}.",
             "", "| variant | wall s (median) | min–max | CPU s this process | CPU s Prefect server "
             "| CPU s SeaweedFS |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ORDER:
        walls = [s.wall for s in by[name]]
        if not walls:
            continue
        lines.append(f"| {name} | {med(name, 'wall'):.2f} | {min(walls):.2f}–{max(walls):.2f} | "
                     f"{med(name, 'cpu'):.2f} | {med(name, 'server_cpu'):.2f} | {med(name, 's3_cpu'):.2f} |")
    if by["promotion"] and by["bare flow"]:
        ratio = med("promotion", "wall") / med("bare flow", "wall")
        cpu_ratio = ((med("promotion", "cpu") + med("promotion", "server_cpu"))
                     / (med("bare flow", "cpu") + med("bare flow", "server_cpu")))
        lines += ["", f"- **promotion / bare flow: {ratio:.2f}× wall** (target ≤ 1.5×), {cpu_ratio:.2f}× CPU "
                      "(this process + Prefect server)."]
        if by["bare flow, tasks"]:
            tasks_cpu = med("bare flow, tasks", "cpu") + med("bare flow, tasks", "server_cpu")
            tasks_wall = med("promotion", "wall") / med("bare flow, tasks", "wall")
            promo_cpu = med("promotion", "cpu") + med("promotion", "server_cpu")
            lines.append(f"- promotion / bare flow with tasks: {tasks_wall:.2f}× wall, "
                         f"{promo_cpu / tasks_cpu:.2f}× CPU.")
        promos = by["promotion"]
        tasks = statistics.median(p.tasks for p in promos)
        gate_s = statistics.median(p.gate_task_s for p in promos)
        artifacts = statistics.median(p.artifacts for p in promos)
        lines.append(f"- Inside the promotion (Prefect's task runs, medians): {tasks:.0f} task runs and "
                     f"{artifacts:.0f} artifacts; {gate_s:.2f} s in "
                     "the gate work (gate-*, load-test and the tasks making the gates' inputs: what the bare flow "
                     "does), "
                     f"{statistics.median(p.other_task_s for p in promos):.2f} s in the other tasks (ledger, evidence, "
                     "announcements, production copy and pointer, checks); the rest of its wall time is the flow and "
                     "task engine between them.")
        names = sorted({name for p in promos for name in p.by_task},
                       key=lambda name: -statistics.median(p.by_task.get(name, 0.0) for p in promos))
        lines.append("- The promotion's slowest task names (seconds summed per promotion, medians): " + ", ".join(
            f"{name} {statistics.median(p.by_task.get(name, 0.0) for p in promos):.2f}" for name in names[:14]) + ".")
        lines.append(f"- bare flow / no Prefect: {med('bare flow', 'wall') / med('no Prefect', 'wall'):.2f}× wall; "
                     f"promotion − bare flow: {med('promotion', 'wall') - med('bare flow', 'wall'):.2f} s wall.")
    if args.stopped:
        lines.append(f"\n**Not every repetition ran: {args.stopped}.**")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each variant (after one warm-up)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rate", type=float, default=20, help="load_test: offered requests/s")
    parser.add_argument("--load-seconds", type=float, default=2, help="load_test: measured duration")
    parser.add_argument("--stop-by", help="HH:MM (UTC, today): start no repetition after ~40 s before then")
    args = parser.parse_args(argv)
    args.deadline, args.stopped = float("inf"), ""
    if args.stop_by:
        hour, minute = (int(x) for x in args.stop_by.split(":"))
        now = time.gmtime()
        since_midnight = now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
        args.deadline = time.time() + (hour * 60 + minute) * 60 - since_midnight - 40
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    state = Path(tempfile.mkdtemp(prefix="overhead-bench-"))
    print(f"state {state}", flush=True)
    loads = [os.getloadavg()[0]]
    samples = run(args, state, loads)
    print()
    print(report(samples, args, started, loads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

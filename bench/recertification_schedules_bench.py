"""Benchmark: `clearance deploy`'s re-certification schedules for 1,000 production models.

    .venv/bin/python bench/recertification_schedules_bench.py --models 1000 --baseline 50

Starts a local SeaweedFS and Prefect server (temp state; stopped at the end), writes a config dir of
``--models`` manifests on a re-certifying tier and one ``CURRENT.json`` per model, then measures
``sync_recertification_deployments``:

- ``first``      every deployment created;
- ``no change``  the same configs again (the case that runs every `clearance deploy`);
- ``changed``    ``--changed`` manifests get their own cron;

and, side by side, what a user would otherwise write: Prefect's own ``flow.deploy()`` per model (the flow
loaded once with ``flow.from_source``), on ``--baseline`` models, first and again unchanged, per model
and extrapolated to ``--models`` (labelled as such). Prefect API calls are counted at the HTTP layer
(every ``httpx`` send of any client in this process); the sync's own count (an event hook on its client)
is printed next to it as a cross-check. Pointer reads (HEADs) are timed separately.

Not a test (timings on a shared 2-core machine are noisy, and Prefect's scheduler service works in the
same server while it runs). Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIER_CRON = "0 6 * * 1"
RECERTIFICATION = {"schedule": TIER_CRON, "timezone": "UTC", "validity": "90d",
                   "gates": [{"id": "artifact_integrity", "config": {"allowed_formats": ["joblib"]}}]}
PRINCIPALS = [{"id": "dana", "email": "dana@example.com", "local_users": ["dana"], "roles": []}]


@dataclass
class Measured:
    label: str
    seconds: float
    calls: int
    writes: int
    note: str = ""


class HttpCounter:
    """Counts every request any httpx client of this process sends (sync and async)."""

    def __init__(self) -> None:
        import httpx

        self.calls = 0
        #: Responses by HTTP status (a retried 503 or 429 counts as a call of its own).
        self.statuses: collections.Counter[int] = collections.Counter()
        counter = self
        sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            counter.calls += 1
            response = sync_send(self, request, *args, **kwargs)
            counter.statuses[response.status_code] += 1
            return response

        async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            counter.calls += 1
            response = await async_send(self, request, *args, **kwargs)
            counter.statuses[response.status_code] += 1
            return response

        httpx.Client.send = send  # type: ignore[method-assign]
        httpx.AsyncClient.send = asend  # type: ignore[method-assign]


def statuses_since(counter: HttpCounter, before: collections.Counter[int]) -> str:
    """The responses since ``before`` by status, e.g. ``201×1000 200×7 503×3``."""
    now = counter.statuses - before
    return " ".join(f"{status}×{count}" for status, count in sorted(now.items(), key=lambda kv: -kv[1]))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"`nproc` = {os.cpu_count()} ({cpu}), Linux {platform.release()}, Python {platform.python_version()}; "
            f"load average at the end {load}")


def write_configs(root: Path, models: list[str], own: dict[str, str]) -> None:
    """Write (or rewrite) these models' manifests, ``own[model]`` their own cron; the others stay as they are."""
    from tests.integration.promotion_kit import write_recertification_configs

    write_recertification_configs(root, models, RECERTIFICATION, {m: {"schedule": c} for m, c in own.items()},
                                  principals=PRINCIPALS, replace=False)


def load(root: Path, count: int):
    from clearance.config import load_config_dir
    from clearance.config.limits import ConfigLimits

    # The default limit is 1,000 files per config dir: 1,000 models need it raised (CLEARANCE_CONFIG_MAX_FILES).
    return load_config_dir(root, ConfigLimits(max_files=count + 100, max_dir_bytes=256 * 1024 * 1024))


def put_pointers(store, models: list[str]) -> None:
    from clearance.core.keys import pointer_key
    from tasks.promotion import ProductionPointer

    def put(model: str) -> None:
        pointer = ProductionPointer(model=model, version="1.0.0", artifact_digest="0" * 64,
                                    artifacts={f"production/{model}/1.0.0/model.joblib": "0" * 64}, run_id="bench")
        store.put_if_match(pointer_key(model), pointer.model_dump_json().encode(), None)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, models))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=50, help="models deployed with flow.deploy() (0: skip)")
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temp state (server logs) afterwards")
    args = parser.parse_args(argv)

    from clearance.dev import devservers

    state = Path(tempfile.mkdtemp(prefix="recert-bench-"))
    services = devservers.up(state / "services")
    os.environ.update(devservers.service_env(services))
    os.environ["PREFECT_HOME"] = str(state / "prefect-client")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    try:
        return run(args, state, started)
    finally:
        devservers.down(state / "services")
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)


def run(args: argparse.Namespace, state: Path, started: str) -> int:
    from clearance.app.deployments import (
        REPO_ROOT,
        ensure_work_pool,
        forwarded_env,
        sync_recertification_deployments,
        wanted_recertifications,
    )
    from clearance.settings import get_settings
    from tasks.wiring import object_store

    get_settings.cache_clear()
    counter = HttpCounter()
    store = object_store()
    pool = "bench-recert"
    models = [f"bench-{i:04d}" for i in range(args.models)]
    configs_dir = state / "configs"
    write_configs(configs_dir, models, {})
    t = time.perf_counter()
    configs = load(configs_dir, args.models)
    load_s = time.perf_counter() - t
    put_pointers(store, models)
    t = time.perf_counter()
    wanted, heads = wanted_recertifications(configs, store)
    heads_s = time.perf_counter() - t
    assert len(wanted) == args.models

    rows: list[Measured] = []

    def measure(label: str, configs) -> None:
        before, statuses = counter.calls, counter.statuses.copy()
        t0 = time.perf_counter()
        report = sync_recertification_deployments(pool, configs, store)
        seconds = time.perf_counter() - t0
        http = counter.calls - before
        rows.append(Measured(label, seconds, http, report.writes,
                             f"{len(report.created)} created, {len(report.updated)} updated, "
                             f"{len(report.unchanged)} unchanged; own count {report.api_calls}, "
                             f"{report.store_reads} HEADs; HTTP {statuses_since(counter, statuses)}"))
        print(rows[-1], flush=True)

    measure(f"sync, first ({args.models} new)", configs)
    measure("sync, no change", configs)
    changed = dict.fromkeys(models[: args.changed], "30 5 * * *")
    write_configs(configs_dir, models[: args.changed], changed)
    measure(f"sync, {args.changed} changed", load(configs_dir, args.models))
    measure("sync, no change (again)", load(configs_dir, args.models))

    baseline: list[Measured] = []
    if args.baseline:
        from prefect import flow

        base_pool = "bench-flow-deploy"
        ensure_work_pool(base_pool)
        env = forwarded_env(configs_dir)
        before = counter.calls
        t0 = time.perf_counter()
        loaded = cast(Any, flow.from_source(source=str(REPO_ROOT), entrypoint="flows/recertify.py:recertify_model"))
        load_flow = Measured("flow.from_source (once)", time.perf_counter() - t0, counter.calls - before, 0)
        baseline.append(load_flow)
        for label in ("first", "again, unchanged"):
            before, statuses = counter.calls, counter.statuses.copy()
            t0 = time.perf_counter()
            for model in models[: args.baseline]:
                with contextlib.redirect_stdout(io.StringIO()):  # its table of one deployment, each time
                    loaded.deploy(name=f"fd-{model}", work_pool_name=base_pool, cron=TIER_CRON,
                                  parameters={"model": model},
                                  job_variables={"env": env, "working_dir": str(REPO_ROOT)},
                                  tags=["clearance", "recertification"], build=False, push=False,
                                  print_next_steps=False, ignore_warnings=True)
            baseline.append(Measured(f"flow.deploy() × {args.baseline}, {label}", time.perf_counter() - t0,
                                     counter.calls - before, args.baseline,
                                     f"HTTP {statuses_since(counter, statuses)}"))
            print(baseline[-1], flush=True)

    print(report_markdown(args, started, rows, baseline, load_s, heads, heads_s))
    return 0


def report_markdown(args: argparse.Namespace, started: str, rows: list[Measured], baseline: list[Measured],
                    load_s: float, heads: int, heads_s: float) -> str:
    lines = [f"### {started}–{time.strftime('%H:%M', time.gmtime())} UTC "
             f"(`bench/recertification_schedules_bench.py --models {args.models} --baseline {args.baseline}`)", "",
             f"- Machine: {machine()}.",
             f"- Config dir of {args.models} manifests loaded in {load_s:.2f} s; {heads} pointer HEADs against "
             f"SeaweedFS in {heads_s:.2f} s ({heads_s / max(heads, 1) * 1000:.2f} ms each, 8 at a time).", "",
             "| what | models | s | Prefect API calls | writes | detail |", "|---|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row.label} | {args.models} | {row.seconds:.2f} | {row.calls} | {row.writes} | {row.note} |")
    for row in baseline:
        lines.append(f"| {row.label} | {args.baseline if row.writes else 1} | {row.seconds:.2f} | {row.calls} | "
                     f"{row.writes} | {row.note} |")
    if len(baseline) == 3:
        lines.append("")
        for row in baseline[1:]:
            per_s, per_calls = row.seconds / args.baseline, row.calls / args.baseline
            lines.append(f"- flow.deploy() {row.label.split(', ', 1)[1]}: {per_s * 1000:.0f} ms and {per_calls:.1f} "
                         f"calls per model; **extrapolated** to {args.models}: {per_s * args.models:.0f} s, "
                         f"{per_calls * args.models:.0f} calls.")
        first, again = rows[0], rows[1]
        scale = args.models / args.baseline  # flow.deploy() extrapolated to every model
        lines.append(f"- Ratios (extrapolated flow.deploy ÷ sync): first "
                     f"{baseline[1].seconds * scale / first.seconds:.1f}× time, "
                     f"{baseline[1].calls * scale / max(first.calls, 1):.1f}× calls; no change "
                     f"{baseline[2].seconds * scale / again.seconds:.0f}× time, "
                     f"{baseline[2].calls * scale / max(again.calls, 1):.0f}× calls.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

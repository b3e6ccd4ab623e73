"""Benchmark: many promotions waiting for sign-off at once, then a burst of approvals (issue 18).

    .venv/bin/python bench/promotion_burst_bench.py --runs 100 --workers 2 --db postgres --db sqlite [--bare-runs 20]

For each database it starts a local SeaweedFS and a Prefect server on that database (temp state; all
stopped at the end), two process workers on one pool, and then:

1. ``--runs`` promotions of as many models (deployment runs, the default way), each to its sign-off, where
   it is *suspended*: the memory of server (+ PostgreSQL) and workers is read when all wait, beside their
   idle footprint (read before the first run);
2. the approvals in a burst, 8 threads: ``--via intake`` (default) both approvers of every run through the shared
   intake the CLI, Slack and Jira call; ``--via slack``: the local Slack (tests/fakes) gets every run's sign-off
   message, sam's approvals go through the intake before the burst, and the burst is the deciding approvals as
   signed Slack clicks (bea's **Approve** button) to ``clearance serve`` (its ASGI app in this process) and, for
   the first ``--cli-deciders`` runs, ``clearance approve RUN`` (the real CLI as OS user bea, a process each).
   The time from each deciding decision being sent to the run's next step (Running again; its ``approved``
   ledger entry), p50/p95/max, and the drain time until every run has ended. ``--pace N`` sends the deciding
   decisions (and the bare resumes) at a steady N per minute instead: the rate these cores keep with every
   decision's next step within a latency target (a burst of 100 at once measures the queue, not the latency).
   Before the first decision the bench waits, untimed, until the server (+ PostgreSQL) is back to its idle CPU:
   the start phase's events are still being written for a while after the last run suspended;
3. correctness: every run Completed, every ledger exactly started → gate → approval-requested → approved →
   promoting → promoted (none lost, none promoted twice), every pointer on 1.0.0.

Side by side, in the same run and on the same server and workers, the bare-Prefect baseline: ``--bare-runs``
(default min(runs, 20)) runs of a flow that does nothing but suspend for input
(``suspend_flow_run(wait_for_input=…)``) and is resumed with ``resume_flow_run``: its memory while suspended
and its resume → running latency.

Both kinds are also timed on Prefect's own clock: the deciding decision (or ``resume_flow_run``) returning →
the run's last ``Running`` state (the resumed process started its engine; server timestamps, µs), since the
ledger's ``at`` has the store clock's 1-s grain (truncated: it reads up to 1 s early). CPU: user + system of
the workers and every flow-run process they started and reaped (``psutil`` ``cpu_times`` with ``children_*``,
as bench/resume_bench.py), and of the server (+ PostgreSQL), per phase.

Not a test: timings on a shared 2-core machine are noisy. Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_s, pct, settle, stop_everything, tree_state  # noqa: E402

POOL = "clearance-bench"
SLACK_CHANNEL = "C0BURST0001"
SLACK_SECRET = "bench-signing-secret"
#: Wall-clock time (epoch s) by which every wait gives up (``--stop-by``), leaving a margin to stop the servers.
DEADLINE = float("inf")
TEARDOWN_MARGIN = 45.0
#: Deciding decisions (and bare resumes) per minute (``--pace``); 0: all at once, as fast as 8 threads send them.
PACE = 0.0


def left(default: float = 60 * 60) -> float:
    """Seconds a wait may still take: ``default``, or less so that the run ends by ``--stop-by``."""
    return max(1.0, min(default, DEADLINE - TEARDOWN_MARGIN - time.time()))
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
    #: memory just before the bare runs start (after the promotions drained): the bare runs' own baseline
    bare_idle_mb: float = 0.0
    bare_resume: list[float] = field(default_factory=list)
    bare_runs: int = 0
    #: how the burst's decisions arrive: "intake" (both, through the shared intake), or "slack": sam's through the
    #: intake before the burst, the deciding one (bea's) as a signed Slack click to `clearance serve`, or for the
    #: first --cli-deciders runs as `clearance approve` (the real CLI, a process each)
    via: str = "intake"
    slack_clicks: int = 0
    cli_decisions: int = 0
    slack_violations: int = 0
    #: click sent → `clearance serve` answered 200; `clearance approve` started → exited
    acks: list[float] = field(default_factory=list)
    cli_s: list[float] = field(default_factory=list)
    bare_completed: int = 0
    #: deciding decision → the run's last Running state (Prefect's clock)
    click_to_running: list[float] = field(default_factory=list)
    final_states: dict[str, int] = field(default_factory=dict)
    double_promoted: int = 0
    pointers_ok: int = 0
    #: CPU seconds (user + system) by phase: "start" (all to their sign-off), "drain" (burst → all ended),
    #: "bare start", "bare drain"; of the workers with their flow-run processes, and of the server (+ PostgreSQL)
    workers_cpu: dict[str, float] = field(default_factory=dict)
    server_cpu: dict[str, float] = field(default_factory=dict)
    bare_to_suspend_s: float = 0.0
    bare_drain_s: float = 0.0
    load: dict[str, float] = field(default_factory=dict)
    #: seconds waited after all were suspended for the server (+ PostgreSQL) to be back to its idle CPU
    settle_s: float = 0.0
    locked_by_log: dict[str, int] = field(default_factory=dict)
    error_lines: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: flow-run processes forked from clearance worker's warm-start template (its line in the worker logs)
    warm_starts: int = 0
    #: ERROR lines of the Prefect server's log, by message
    server_errors: dict[str, int] = field(default_factory=dict)


def send_all(send: Callable[[Any], None], items: list) -> None:
    """``send`` each item from 8 threads: all at once, or the i-th at i × 60 / ``--pace`` s after the first, so
    that the decisions arrive at a steady rate instead of in one burst."""
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        sent = []
        for index, item in enumerate(items):
            if PACE:
                time.sleep(max(0.0, began + index * 60 / PACE - time.monotonic()))
            sent.append(pool.submit(send, item))
        for future in sent:
            future.result()


def rss_mb(pids: list[int]) -> float:
    """Memory of these processes and all their descendants, in MB: the sum of their PSS (proportional set size:
    a page shared by n processes counts 1/n in each — PostgreSQL's shared buffers, a warm-start template's
    forked copies), so nothing shared is counted twice; RSS where PSS cannot be read."""
    import psutil

    seen: dict[int, float] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    seen[p.pid] = p.memory_full_info().pss / 1e6
                except (psutil.AccessDenied, AttributeError):
                    seen[p.pid] = p.memory_info().rss / 1e6
                except psutil.NoSuchProcess:
                    continue
        except psutil.NoSuchProcess:
            continue
    return sum(seen.values())


def descendants(pids: list[int]) -> int:
    """How many live descendants these processes have."""
    import psutil

    count = 0
    for pid in pids:
        try:
            count += len(psutil.Process(pid).children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return count


def wait_quiet(pids: list[int], idle: int, timeout: float = 90) -> None:
    """Until the workers have no more descendants than when idle (every run's process has exited)."""
    deadline = time.monotonic() + timeout
    while descendants(pids) > idle and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)  # reaped: their CPU is in the counters


def one_database(db: str, runs: int, workers: int, state: Path, bare_runs: int, via: str = "intake",
                 cli_deciders: int = 0) -> Outcome:
    from clearance.dev import devservers
    from tasks.signing import write_key_pair

    outcome = Outcome(db=db, runs=runs, bare_runs=bare_runs, via=via)
    began = time.monotonic()
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
    stack = contextlib.ExitStack()  # the local Slack and `clearance serve` (--via slack)
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect.api_url, PREFECT_HOME: str(state / "client")}):
            measure(outcome, state, runs, workers, procs, prefect, stack, cli_deciders)
    finally:
        stack.close()
        stop_everything(procs, prefect, s3, state)
        for log in [Path(prefect.log_path), *sorted(state.glob("worker-*.log"))]:
            text = log.read_text(errors="replace")
            outcome.locked_by_log[log.name] = text.count("database is locked")
            if log.name == Path(prefect.log_path).name:  # "HH:MM:SS.mmm | ERROR   | logger - message"
                for line in text.splitlines():
                    if "| ERROR" in line:
                        message = line.split("| ERROR", 1)[1].strip(" |")[:90]
                        outcome.server_errors[message] = outcome.server_errors.get(message, 0) + 1
            if log.name.startswith("worker-"):
                outcome.warm_starts += text.count("forked from template")
                outcome.error_lines += sum(1 for line in text.splitlines()
                                           if "| ERROR" in line or "Traceback" in line)
        outcome.locked_lines = sum(outcome.locked_by_log.values())
        outcome.wall_s = time.monotonic() - began
    return outcome


def slack_burst(outcome: Outcome, store: Any, fake: Any, stack: contextlib.ExitStack, pairs: list,
                clicks: dict[str, float], cli_deciders: int):
    """Everything but the deciding decisions, done before the burst: `clearance serve` (its ASGI app, in this
    process), sam's approval of every run through the intake, and each run's Approve button read from its Slack
    message; returns the burst's step for one (candidate, run): bea's signed click, or `clearance approve`."""
    import httpx

    from clearance.app.serve.app import build_app
    from clearance.core.keys import slack_state_key
    from tests.fakes.slack_server import AsgiThread, block_actions, button, form_body, sign
    from tests.integration.promotion_kit import cli, decide

    serve = AsgiThread(build_app())
    stack.callback(serve.stop)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: decide(store, pair[0], pair[1], "sam"), pairs))
    payloads: dict[str, dict[str, Any]] = {}
    for cand, run_id in pairs[cli_deciders:]:
        try:
            slack = store.get_json(slack_state_key(cand.model, "1.0.0", run_id))
            message = fake.messages[(slack["approvals"][0]["channel"], slack["approvals"][0]["ts"])]
            found = button(message["blocks"], "clearance_approve")
            if found is None:
                raise LookupError("the message has no Approve button")
            value = found["value"]
        except Exception as exc:  # noqa: BLE001 — said in the results; that run is decided through the intake
            outcome.notes.append(f"run {run_id}: no Slack Approve button ({type(exc).__name__}: {exc})")
            continue
        payloads[run_id] = block_actions(fake, user="U0BEA000004", channel=SLACK_CHANNEL, message_ts=message["ts"],
                                         action_id="clearance_approve", value=value)

    def approve(pair) -> None:
        cand, run_id = pair
        clicks[cand.model] = time.time()  # the deciding click is sent
        if run_id in payloads:
            body = form_body(payloads[run_id])
            answer = httpx.post(f"{serve.url}/slack/interactions", content=body, headers=sign(SLACK_SECRET, body),
                                timeout=60)
            outcome.acks.append(time.time() - clicks[cand.model])
            outcome.slack_clicks += 1
            if answer.status_code != 200:
                outcome.notes.append(f"run {run_id}: Slack click answered {answer.status_code}: {answer.text[:200]}")
        elif pairs.index(pair) < cli_deciders:
            try:
                done = cli(cand, "bea", "approve", run_id, "--comment", "burst")
            except subprocess.TimeoutExpired:  # promotion_kit.cli gives up after 120 s: said, not fatal
                outcome.notes.append(f"run {run_id}: clearance approve did not return within 120 s")
                return
            outcome.cli_s.append(time.time() - clicks[cand.model])
            outcome.cli_decisions += 1
            if done.returncode:
                outcome.notes.append(f"run {run_id}: clearance approve exit {done.returncode}: "
                                     f"{(done.stderr or done.stdout)[-300:]}")
        else:
            decide(store, cand, run_id, "bea")

    stack.callback(lambda: setattr(outcome, "slack_violations", len(fake.violations)))
    return approve


def measure(outcome: Outcome, state: Path, runs: int, workers: int, procs: list, prefect,
            stack: contextlib.ExitStack, cli_deciders: int) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    from clearance.app.deployments import ensure_work_pool, register_deployments
    from clearance.dev import postgres
    from tasks.ledger import read_ledger
    from tasks.promotion import read_pointer
    from tasks.wiring import object_store
    from tests.integration.promotion_kit import decide, many_models, start_pool_worker, wait_all

    store = object_store()
    candidates = many_models(state, store, runs)
    first = candidates[0]
    os.environ["CLEARANCE_CONFIG_DIR"] = str(first.config_dir)
    fake: Any = None
    if outcome.via == "slack":  # before the workers start: their runs post to this Slack
        from clearance.settings import get_settings
        from tests.integration.promotion_kit import slack_for_principals

        fake = slack_for_principals(SLACK_CHANNEL)
        stack.callback(fake.stop)
        os.environ.update(fake.env(SLACK_CHANNEL, SLACK_SECRET))
        get_settings.cache_clear()
    ensure_work_pool(POOL)
    register_deployments(POOL)
    (state / "bare_flow.py").write_text(BARE_FLOW)
    bare = cast(Any, flow.from_source(str(state), "bare_flow.py:bare_suspend"))
    bare.deploy("bare-suspend", work_pool_name=POOL, job_variables={"working_dir": str(state)}, build=False,
                push=False, print_next_steps=False, ignore_warnings=True)

    for index in range(workers):
        procs.append(start_pool_worker(POOL, state / f"worker-{index}.log", clearance=True, LIMIT="8"))
    cluster = postgres.load(state)
    server = [prefect.pid, *([cluster.pid] if cluster else [])]
    worker_pids = [p.pid for p in procs]
    serving = [*server, *worker_pids]
    idle_cpu = cpu_s(server)
    time.sleep(8)
    idle_rate = (cpu_s(server) - idle_cpu) / 8  # the server's CPU-s per second answering idle workers' polls
    idle_children = descendants(worker_pids)  # e.g. clearance worker's warm-start template
    outcome.idle_mb = rss_mb(serving)
    outcome.load["idle"] = os.getloadavg()[0]

    def cpu_mark() -> tuple[float, float]:
        return cpu_s(worker_pids), cpu_s(server)

    def cpu_phase(name: str, since: tuple[float, float]) -> None:
        now = cpu_mark()
        outcome.workers_cpu[name] = now[0] - since[0]
        outcome.server_cpu[name] = now[1] - since[1]
        outcome.load[name] = os.getloadavg()[0]

    # --- clearance: every run to its sign-off, suspended
    mark = cpu_mark()
    started = time.monotonic()
    run_ids = [str(cast(FlowRun, run_deployment(
        "promote-model/promote-model", timeout=0,
        parameters={"model": c.model, "version": "1.0.0", "initiator": "dana"})).id) for c in candidates]
    now = wait_all(run_ids, {"Suspended", "Completed", "Failed", "Crashed", "Cancelled"}, timeout=left())
    outcome.to_suspend_s = time.monotonic() - started
    if set(now.values()) != {"Suspended"}:
        if any(now.get(r) not in {"Suspended", "Completed", "Failed", "Crashed", "Cancelled"} for r in run_ids):
            outcome.notes.append("not every run reached its sign-off in time (--stop-by): those are counted as "
                                 "'never reached sign-off' and were not approved")
        outcome.lost = [r for r in run_ids if now.get(r) != "Suspended"]
    wait_quiet(worker_pids, idle_children)  # a process exits a moment after its run turned Suspended
    outcome.waiting_mb = rss_mb(serving)
    cpu_phase("start", mark)
    print(f"{outcome.db}: {runs} suspended in {outcome.to_suspend_s:.0f} s, {outcome.waiting_mb:.0f} MB", flush=True)

    # --- the burst, once the server has written the start phase's backlog of events (a sign-off comes minutes
    # or hours after its run reached it, not while 100 starts are still being recorded)
    outcome.settle_s = settle(server, quiet_cpu=(idle_rate + 0.05) * 2, window=2, longest=min(180, left()))
    clicks: dict[str, float] = {}
    pairs = [(c, r) for c, r in zip(candidates, run_ids, strict=True) if r not in outcome.lost]
    if outcome.via == "slack":
        approve = slack_burst(outcome, store, fake, stack, pairs, clicks, cli_deciders)
    else:
        def approve(pair) -> None:
            cand, run_id = pair
            decide(store, cand, run_id, "sam")  # then the deciding one (bea's), both through the intake
            clicks[cand.model] = time.time()
            decide(store, cand, run_id, "bea")

    mark = cpu_mark()
    burst = time.monotonic()
    send_all(approve, pairs)
    final = wait_all(run_ids, {"Completed", "Failed", "Crashed", "Cancelled"}, timeout=left())
    going = [r for r in run_ids if final.get(r) not in {"Completed", "Failed", "Crashed", "Cancelled"}]
    if going:
        outcome.notes.append(f"the drain did not end in time (--stop-by): {len(going)} runs still going were "
                             "stopped with the servers (their figures are missing)")
    outcome.drain_s = time.monotonic() - burst
    wait_quiet(worker_pids, idle_children)  # the last processes exit and are reaped
    cpu_phase("drain", mark)
    print(f"{outcome.db}: drained in {outcome.drain_s:.0f} s", flush=True)
    outcome.completed = sum(1 for r in run_ids if final.get(r) == "Completed")
    for name in final.values():
        outcome.final_states[name] = outcome.final_states.get(name, 0) + 1
    with get_client(sync_client=True) as client:
        for cand, run_id in zip(candidates, run_ids, strict=True):
            entries = read_ledger(store, cand.model)
            kinds = [e.kind for e in entries]
            if kinds == EXPECTED:
                outcome.ledgers_ok += 1
            if kinds.count("promoted") > 1 or kinds.count("promoting") > 1:
                outcome.double_promoted += 1
            pointer = read_pointer(store, "production", cand.model).pointer
            if pointer is not None and pointer.version == "1.0.0" and pointer.run_id == run_id:
                outcome.pointers_ok += 1
            approved = next((e for e in entries if e.kind == "approved"), None)
            if approved is not None and cand.model in clicks:
                outcome.click_to_step.append(approved.at.timestamp() - clicks[cand.model])
            running = [s.timestamp for s in client.read_flow_run_states(UUID(run_id))
                       if s.name == "Running" and s.timestamp]
            if running and cand.model in clicks:
                outcome.click_to_running.append(max(running).timestamp() - clicks[cand.model])

    # --- bare Prefect: suspended runs of a flow that only waits, resumed the bare way
    count = outcome.bare_runs
    if not count:
        return
    if left() < 20 * count + 60:  # ~20 s per bare run start and resume at this load, from the smoke run
        outcome.notes.append(f"bare baseline skipped: not enough time left before --stop-by for {count} runs")
        outcome.bare_runs = 0
        return
    outcome.bare_idle_mb = rss_mb(serving)
    mark = cpu_mark()
    started = time.monotonic()
    bare_ids = [str(cast(FlowRun, run_deployment("bare-suspend/bare-suspend", timeout=0, parameters={"n": i})).id)
                for i in range(count)]
    wait_all(bare_ids, {"Suspended", "Completed", "Failed", "Crashed", "Cancelled"}, timeout=left())
    outcome.bare_to_suspend_s = time.monotonic() - started
    wait_quiet(worker_pids, idle_children)
    outcome.bare_waiting_mb = rss_mb(serving)
    cpu_phase("bare start", mark)
    resumed: dict[str, float] = {}

    def resume(run_id: str) -> None:
        with get_client(sync_client=True) as client:
            client.resume_flow_run(UUID(run_id), run_input={"value": "ok"})
        resumed[run_id] = time.time()

    mark = cpu_mark()
    started = time.monotonic()
    send_all(resume, bare_ids)
    bare_final = wait_all(bare_ids, {"Completed", "Failed", "Crashed", "Cancelled"}, timeout=left())
    outcome.bare_drain_s = time.monotonic() - started
    wait_quiet(worker_pids, idle_children)
    cpu_phase("bare drain", mark)
    outcome.bare_completed = sum(1 for r in bare_ids if bare_final.get(r) == "Completed")
    with get_client(sync_client=True) as client:
        for run_id in bare_ids:
            history = client.read_flow_run_states(UUID(run_id))
            running = [s.timestamp for s in history if s.name == "Running" and s.timestamp]
            if running and run_id in resumed:
                outcome.bare_resume.append(max(running).timestamp() - resumed[run_id])


def fmt(values: list[float]) -> str:
    """p50 / p95 / max of ``values`` (n), in seconds."""
    if not values:
        return "—"
    digits = 2 if max(values) < 1 else 1  # a Slack ack's tens of milliseconds would all print as 0.0
    return f"{pct(values, .5):.{digits}f} / {pct(values, .95):.{digits}f} / {max(values):.{digits}f} (n={len(values)})"


def report(results: list[Outcome], args: argparse.Namespace, started: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    lines = [f"### {started}–{time.strftime('%H:%M', time.gmtime())} UTC", "",
             f"- Machine: `nproc` = {os.cpu_count()} ({cpu}), shared; Linux {platform.release()}, Python "
             f"{platform.python_version()}.",
             f"- Tree: {tree_state()}.",
             f"- Command: `.venv/bin/python bench/promotion_burst_bench.py --runs {args.runs} --workers {args.workers} "
             + " ".join(f"--db {o.db}" for o in results) + f" --bare-runs {results[0].bare_runs if results else 0}"
             + (f" --via slack --cli-deciders {args.cli_deciders}" if args.via == "slack" else "")
             + (f" --pace {args.pace:g}" if args.pace else "")
             + (f" --stop-by {args.stop_by}" if args.stop_by else "") + "`",
             "- Decisions: " + (f"at a steady {args.pace:g} per minute (one every {60 / args.pace:.1f} s), the bare "
                                "resumes at the same rate" if args.pace else "all at once (8 threads)") + ".",
             "", "| | " + " | ".join(o.db for o in results) + " |", "|---|" + "---:|" * len(results)]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(o) for o in results) + " |")

    row("promotions (models)", lambda o: str(o.runs))
    row("deciding decisions through", lambda o: "the shared intake (sam's and bea's, in the burst)"
        if o.via == "intake" else f"{o.slack_clicks} signed Slack clicks to `clearance serve`, {o.cli_decisions} "
        f"`clearance approve` (sam's approvals through the intake before the burst; local Slack: "
        f"{o.slack_violations} contract violations)")
    row("load average (1 min): idle / start / drain / bare",
        lambda o: " / ".join(f"{o.load.get(k, float('nan')):.1f}" for k in ("idle", "start", "drain", "bare drain")))
    row("start → all suspended", lambda o: f"{o.to_suspend_s:.0f} s")
    row("then the server back to idle CPU (untimed, before the decisions)", lambda o: f"{o.settle_s:.0f} s")
    row("memory (PSS) idle → all waiting (server + DB + workers)",
        lambda o: f"{o.idle_mb:.0f} → {o.waiting_mb:.0f} MB (+{o.waiting_mb - o.idle_mb:.0f})")
    if any(o.via == "slack" for o in results):
        row("Slack click sent → `clearance serve` answered 200, p50 / p95 / max", lambda o: fmt(o.acks))
        row("`clearance approve` (a process) started → exited, p50 / p95 / max", lambda o: fmt(o.cli_s))
    row("deciding decision sent → run Running again, p50 / p95 / max", lambda o: fmt(o.click_to_running))
    row("deciding decision sent → `approved` entry (store clock, 1-s grain), p50 / p95 / max",
        lambda o: fmt(o.click_to_step))
    row("first decision → all ended (drain)", lambda o: f"{o.drain_s:.0f} s")
    row("final states", lambda o: ", ".join(f"{k} {v}" for k, v in sorted(o.final_states.items())))
    row("Completed / ledgers exactly started→…→promoted / pointer on this run",
        lambda o: f"{o.completed} / {o.ledgers_ok} / {o.pointers_ok} of {o.runs}")
    row("never reached sign-off / promoted twice", lambda o: f"{len(o.lost)} / {o.double_promoted}")
    row("'database is locked' lines (server, workers)",
        lambda o: f"{o.locked_lines} (" + ", ".join(f"{k} {v}" for k, v in o.locked_by_log.items()) + ")")
    row("ERROR/Traceback lines in worker logs", lambda o: str(o.error_lines))
    row("ERROR lines in the server log", lambda o: "; ".join(f"{n}× {m}" for m, n in o.server_errors.items())
        or "0")
    row("flow-run processes forked from the warm-start template (all kinds, all phases)",
        lambda o: str(o.warm_starts))
    row("CPU s workers+runs: start / drain (per promotion)",
        lambda o: f"{o.workers_cpu.get('start', 0):.0f} / {o.workers_cpu.get('drain', 0):.0f} "
                  f"({o.workers_cpu.get('start', 0) / max(o.runs, 1):.1f} / "
                  f"{o.workers_cpu.get('drain', 0) / max(o.runs, 1):.1f})")
    row("CPU s server (+ PostgreSQL): start / drain",
        lambda o: f"{o.server_cpu.get('start', 0):.0f} / {o.server_cpu.get('drain', 0):.0f}")
    row("**bare Prefect** suspend/resume runs", lambda o: f"{o.bare_runs} ({o.bare_completed} Completed)")
    row("bare: start → all suspended", lambda o: f"{o.bare_to_suspend_s:.0f} s")
    row("bare: memory before → all waiting",
        lambda o: f"{o.bare_idle_mb:.0f} → {o.bare_waiting_mb:.0f} MB (+{o.bare_waiting_mb - o.bare_idle_mb:.0f})")
    row("bare: resume_flow_run → Running, p50 / p95 / max", lambda o: fmt(o.bare_resume))
    row("bare: first resume → all ended", lambda o: f"{o.bare_drain_s:.0f} s")
    row("bare: CPU s workers+runs start / drain (per run)",
        lambda o: f"{o.workers_cpu.get('bare start', 0):.0f} / {o.workers_cpu.get('bare drain', 0):.0f} "
                  f"({o.workers_cpu.get('bare start', 0) / max(o.bare_runs, 1):.1f} / "
                  f"{o.workers_cpu.get('bare drain', 0) / max(o.bare_runs, 1):.1f})")
    row("wall time of the whole database's run", lambda o: f"{o.wall_s:.0f} s")
    for o in results:
        for note in o.notes:
            lines.append(f"\n**{o.db}: {note}.**")
        if o.lost:
            lines.append(f"\n{o.db}: {len(o.lost)} runs never reached their sign-off: {', '.join(o.lost[:5])}…")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", action="append", choices=["postgres", "sqlite"])
    parser.add_argument("--via", choices=["intake", "slack"], default="intake",
                        help="the deciding decisions: through the intake, or signed Slack clicks to clearance serve")
    parser.add_argument("--cli-deciders", type=int, default=5,
                        help="--via slack: this many runs are decided by `clearance approve` instead of a click")
    parser.add_argument("--stop-by", help="HH:MM (UTC, today): stop waiting in time to end by then")
    parser.add_argument("--pace", type=float, default=0.0,
                        help="deciding decisions (and bare resumes) per minute, at a steady rate (default 0: all at "
                             "once): the rate a given number of cores keeps under a latency target")
    parser.add_argument("--bare-runs", type=int, default=None,
                        help="runs of the bare suspend/resume flow (default: min(runs, 20); 0: none)")
    args = parser.parse_args(argv)
    if args.pace < 0:
        parser.error("--pace must be 0 (all at once) or a positive rate per minute")
    global PACE
    PACE = args.pace
    bare_runs = min(args.runs, 20) if args.bare_runs is None else args.bare_runs
    if args.stop_by:
        global DEADLINE
        hour, minute = (int(x) for x in args.stop_by.split(":"))
        now = time.gmtime()
        DEADLINE = time.time() + ((hour * 60 + minute) * 60 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec))
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    results = []
    for db in args.db or ["postgres", "sqlite"]:
        state = Path(tempfile.mkdtemp(prefix=f"burst-{db}-"))
        print(f"--- {db}: {args.runs} runs, {args.workers} workers (state {state})", flush=True)
        results.append(one_database(db, args.runs, args.workers, state, bare_runs, args.via,
                                    args.cli_deciders if args.via == "slack" else 0))
        print(results[-1], flush=True)
    print()
    print(report(results, args, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())

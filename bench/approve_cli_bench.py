"""Benchmark: ``clearance approve RUN`` as a person types it, against the bare Prefect way to wake a run.

    .venv/bin/python bench/approve_cli_bench.py --runs 10 [--phases calm,loaded] [--before DIR] [--importtime FILE]

Starts a local SeaweedFS and Prefect server (temp state). Per phase, ``calm`` and then ``loaded`` (two
processes spinning on the CPU for the length of the phase, as a busy 2-core machine), starts ``--runs``
promotions (``clearance promote --direct`` subprocesses) and gives each one approval through the shared
intake, so that one is missing. Then, one run at a time:

- ``prefect``   the baseline a user would otherwise pick: a fresh Python process that resumes the paused
                run with Prefect's own client (``prefect.flow_runs.resume_flow_run``, what ``prefect
                flow-run resume`` does); the run wakes, re-reads its record (still pending) and pauses again;
- ``clearance`` ``clearance approve RUN`` (``python -m clearance``) as the missing approver, on the same
                run: the decision is recorded by compare-and-swap in S3 and the run is woken; the bench
                waits for the run to complete before the next one, so the runs do not compete with it.

With ``--before DIR`` (a checkout of the code before a change, e.g. ``git archive HEAD | tar -x -C DIR``
plus this file), every other run is approved by that checkout's CLI instead (``cwd`` = DIR, so
``python -m clearance`` imports it): before and after on the same servers, moments apart. With ``--installed
PYTHON`` (a virtualenv where ``pip install .`` installed clearance as a user would: no editable-install import
hook, no test extras such as selenium's trio), every other run is approved by that installation instead. ``--importtime
FILE`` first approves one extra run with ``python -X importtime`` and prints its ten slowest imports.

All are timed as the whole process (wall time, start to exit) and its CPU seconds (user + system of that
child, from ``os.wait4``). Prints p50/p95/max per phase and the ratios. Not a test (timings on a shared
2-core machine are noisy).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The baseline: Prefect's own client in a fresh process, as ``prefect flow-run resume`` would do it.
PREFECT_RESUME = ("import sys, uuid\n"
                  "from prefect.flow_runs import resume_flow_run\n"
                  "resume_flow_run(uuid.UUID(sys.argv[1]), run_input={})\n")


@dataclass
class Sample:
    wall: float
    cpu: float


def timed(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> Sample:
    """Run ``args`` to its end; its wall time and the CPU seconds of that process alone (``os.wait4``)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{args[2:]} exited {process.returncode}: {out.read().decode()[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


@contextmanager
def cpu_hogs(count: int, seconds: float):
    """``count`` processes spinning on the CPU for at most ``seconds`` (stopped when the block ends)."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.wait(timeout=30)


def wait_paused_again(run_id: str, previous_pauses: int, timeout: float = 900) -> None:
    """Wait until the run is in its pause number ``previous_pauses + 1`` (``sign-off-N``, flows/signoff.py), and
    half a second more for it to save its sign-off form (a resume is refused until then)."""
    from uuid import UUID

    from prefect import get_client

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        if state and state.is_paused() and state.state_details.pause_key == f"sign-off-{previous_pauses + 1}":
            time.sleep(0.5)
            return
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not pause again: {state}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Other:
    """The CLI that approves every other run: ``label`` in the table, started as ``command`` in ``cwd``."""

    label: str
    command: list[str]
    cwd: Path


def other_cli(before: Path | None, installed: Path | None) -> Other | None:
    """``--before`` (that checkout's code, this interpreter) or ``--installed`` (that interpreter's installed
    clearance, run from a directory outside any checkout so that nothing here is imported)."""
    if before:
        return Other("before", [sys.executable, "-m", "clearance"], before)
    if installed:
        return Other("installed", [str(installed), "-m", "clearance"], Path(tempfile.mkdtemp(prefix="approve-cwd-")))
    return None


def phase(name: str, runs: int, store, other: Other | None = None) -> dict[str, list[Sample]]:
    """``runs`` runs, each resumed once by Prefect's client and then approved by ``clearance approve``; with
    ``other`` (``--before`` or ``--installed``), every other run is approved by that CLI instead."""
    from tests.integration.promotion_kit import (
        cli_env,
        decide,
        find_run,
        finish,
        make_candidate,
        start_direct_run,
        wait_for_request,
    )

    cands = [make_candidate(Path(tempfile.mkdtemp(prefix="approve-bench-cfg-")), store) for _ in range(runs)]
    logs = Path(tempfile.mkdtemp(prefix="approve-bench-logs-"))
    procs = {c.model: start_direct_run(c, "1.0.0", log=logs / f"{c.model}.log") for c in cands}
    run_ids = {c.model: find_run(c.model, "1.0.0", timeout=900) for c in cands}
    for cand in cands:
        wait_for_request(store, run_ids[cand.model], timeout=900)
        assert decide(store, cand, run_ids[cand.model], "bea").accepted  # business; security (sam) missing
    samples: dict[str, list[Sample]] = {"prefect": [], "clearance": []}
    if other:
        samples[other.label] = []
    for number, cand in enumerate(cands):
        run_id = run_ids[cand.model]
        env = cli_env(cand, "sam")
        wait_paused_again(run_id, 0)
        samples["prefect"].append(timed([sys.executable, "-c", PREFECT_RESUME, run_id], env))
        wait_paused_again(run_id, 1)
        which, command, cwd = ((other.label, other.command, other.cwd) if other and number % 2
                               else ("clearance", [sys.executable, "-m", "clearance"], ROOT))
        samples[which].append(timed([*command, "approve", run_id], env, cwd=cwd))
        code = finish(procs[cand.model], timeout=600)
        assert code == 0, f"run {run_id} exit {code}: " + (logs / f"{cand.model}.log").read_text()[-3000:]
        theirs, ours = samples["prefect"][-1], samples[which][-1]
        print(f"{name} {run_id}: prefect {theirs.wall:.2f} s wall {theirs.cpu:.2f} s CPU, {which} {ours.wall:.2f} s "
              f"wall {ours.cpu:.2f} s CPU; load average {os.getloadavg()[0]:.1f}", flush=True)
    return samples


def import_profile(store, path: Path, cprofile: bool = False) -> None:
    """One extra run approved with ``python -X importtime`` (not counted in the tables); its import log to
    ``path`` and the ten slowest imports (cumulative) printed. With ``cprofile``: under ``cProfile`` instead,
    its stats to ``path`` and the 25 functions with the most cumulative time printed."""
    from tests.integration.promotion_kit import cli_env, decide, find_run, finish, make_candidate, start_direct_run

    cand = make_candidate(Path(tempfile.mkdtemp(prefix="approve-bench-cfg-")), store)
    log = Path(tempfile.mkdtemp(prefix="approve-bench-logs-")) / "run.log"
    proc = start_direct_run(cand, "1.0.0", log=log)
    run_id = find_run(cand.model, "1.0.0")
    wait_paused_again(run_id, 0)
    assert decide(store, cand, run_id, "bea").accepted
    how = ["-m", "cProfile", "-o", str(path)] if cprofile else ["-X", "importtime"]
    done = subprocess.run([sys.executable, *how, "-m", "clearance", "approve", run_id],
                          env=cli_env(cand, "sam"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert finish(proc, timeout=180) == 0, log.read_text()[-3000:]
    if cprofile:
        import pstats

        pstats.Stats(str(path)).sort_stats("cumulative").print_stats(25)
        return
    path.write_text(done.stderr)
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")][1:]
    slowest = sorted(((int(r[1]), r[2].rstrip()) for r in rows), reverse=True)[:10]
    print(f"import profile of one approve ({path}): total {sum(int(r[0].split(':')[1]) for r in rows) / 1e6:.2f} s "
          "of imports (self times summed)")
    for micros, name in slowest:
        print(f"  {micros / 1e6:6.2f} s cumulative  {name}")


def table(results: dict[str, dict[str, list[Sample]]]) -> None:
    print()
    print("| phase | command | n | wall p50 s | wall p95 s | wall max s | CPU p50 s | CPU p95 s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, samples in results.items():
        for command, rows in samples.items():
            walls, cpus = [r.wall for r in rows], [r.cpu for r in rows]
            label = {"clearance": "`clearance approve` (this checkout)",
                     "before": "`clearance approve` before the change",
                     "installed": "`clearance approve` installed (`pip install .`, no test extras)",
                     "prefect": "Prefect client `resume_flow_run`"}[command]
            print(f"| {name} | {label} | {len(rows)} | {statistics.median(walls):.2f} | {percentile(walls, 95):.2f} "
                  f"| {max(walls):.2f} | {statistics.median(cpus):.2f} | {percentile(cpus, 95):.2f} |")
    print()
    for name, samples in results.items():
        ours = statistics.median(r.wall for r in samples["clearance"])
        theirs = statistics.median(r.wall for r in samples["prefect"])
        ours_cpu = statistics.median(r.cpu for r in samples["clearance"])
        theirs_cpu = statistics.median(r.cpu for r in samples["prefect"])
        print(f"- {name}: Prefect client ÷ clearance approve, p50 wall {theirs / ours:.2f}×, "
              f"p50 CPU {theirs_cpu / ours_cpu:.2f}×")
        for other, words in (("before", "before ÷ after the change"), ("installed", "installed ÷ this checkout")):
            if samples.get(other):
                wall = statistics.median(r.wall for r in samples[other])
                cpu = statistics.median(r.cpu for r in samples[other])
                print(f"- {name}: {words}, p50 wall {wall / ours:.2f}×, p50 CPU {cpu / ours_cpu:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs per phase")
    parser.add_argument("--phases", default="calm,loaded", help="calm, loaded or both (comma-separated)")
    parser.add_argument("--importtime", type=Path, help="also profile one approve's imports into this file")
    parser.add_argument("--cprofile", type=Path, help="also profile one approve with cProfile into this file")
    parser.add_argument("--before", type=Path, help="a checkout of the code before the change: every other run "
                                                    "is approved by its CLI (same servers, same moments)")
    parser.add_argument("--installed", type=Path, help="a Python with clearance installed as a user installs it "
                                                       "(`pip install .`, no test extras): every other run is "
                                                       "approved by its CLI")
    parser.add_argument("--hogs", type=int, default=2, help="CPU-spinning processes in the loaded phase")
    args = parser.parse_args()

    from clearance.dev import devservers
    from tasks.signing import write_key_pair

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops its servers
    state = Path(tempfile.mkdtemp(prefix="approve-bench-"))
    write_key_pair(state / "service-key")  # the runs sign their ledger entries with it
    s3 = devservers.start_s3(state)
    try:
        prefect = devservers.start_prefect(state, timeout=600)  # a busy machine takes minutes
    except BaseException:
        devservers.stop(s3)
        raise
    try:
        os.environ.update({
            "CLEARANCE_S3_ENDPOINT_URL": s3.endpoint_url, "CLEARANCE_S3_REGION": s3.region,
            "CLEARANCE_S3_ACCESS_KEY_ID": s3.access_key_id, "CLEARANCE_S3_SECRET_ACCESS_KEY": s3.secret_access_key,
            "CLEARANCE_BUCKET": s3.bucket, "PREFECT_API_URL": prefect.api_url,
            "CLEARANCE_PREFECT_API_URL": prefect.api_url, "PREFECT_HOME": str(state / "prefect-client"),
            "CLEARANCE_SERVICE_KEY_FILE": str(state / "service-key"),
            # Paused runs ask Prefect for a resume this often: slow enough not to be the load being measured.
            "CLEARANCE_APPROVAL_POLL_SECONDS": "2", "PREFECT_LOGGING_LEVEL": "WARNING",
        })
        from clearance.settings import get_settings
        from tasks.object_store import ObjectStore

        store = ObjectStore.from_settings(get_settings())
        if args.importtime:
            import_profile(store, args.importtime)
        if args.cprofile:
            import_profile(store, args.cprofile, cprofile=True)
        results: dict[str, dict[str, list[Sample]]] = {}
        other = other_cli(args.before, args.installed)
        for name in args.phases.split(","):
            if name == "loaded":
                with cpu_hogs(args.hogs, seconds=60 * 30):
                    results[name] = phase(name, args.runs, store, other)
            else:
                results[name] = phase(name, args.runs, store, other)
        table(results)
    finally:
        devservers.stop(prefect)
        devservers.stop(s3)


if __name__ == "__main__":
    main()

"""Benchmark of the load generator (``tasks.load_generator.run_load``) against wrk and Locust (issue 15).

    .venv/bin/python bench/load_generator_bench.py                      # ~2 minutes
    .venv/bin/python bench/load_generator_bench.py --seconds 5 --rate 2000 --json out.json

One endpoint for every tool: a minimal HTTP/1.1 "hello" server (a raw uvloop ``asyncio.Protocol`` answering every
request with a fixed 2-byte body, keep-alive), pinned to core 0 (``taskset -c 0``). Not ``clearance serve-model``:
a Starlette app with a model call answers a few thousand requests/s on one core, below what wrk sends, so it would
measure the server, not the generators. The server counts the requests it receives per second; throughput is
read there, the same way for every tool (the median of the steady seconds of a run, the first
:data:`SKIP_HEAD` and the last second dropped).

Each tool runs pinned to core 1 (``taskset -c 1``), one at a time:

1. **Most requests/s on one core** (closed loop, as fast as it goes, 64 connections/users):
   ``wrk -t1 -c64``; Locust ``FastHttpUser`` (``wait_time = constant(0)``, 64 users, one process, headless);
   ``run_load`` with one process and an offered rate far above what it can send (``--flood`` rps,
   ``connections=64``): it sends as fast as it can, every request from its intended time (tens of thousands of
   requests waiting for a connection: its least efficient regime). Also for ``run_load``: the highest offered
   rate of a ramp (``--ramp``, 4 s a step) it *sustains* — achieved ≥ 98 % of offered, its own lateness p99 ≤
   10 ms and CPU ≤ 0.9 (the gate's defaults for a saturated generator) — the number that matters for an open
   model: the fastest rate whose results are still valid.
2. **p99 at the same throughput** (``--rate``, default 2000 rps): wrk is a closed loop (no constant-rate mode;
   wrk2 is not packaged for Debian), so it is paced with a Lua ``delay()`` (``--wrk-connections`` connections,
   each waiting ``connections / rate`` s after every answer) and run first; ``run_load`` is then offered the rate
   wrk achieved (open model, latency from the intended send time, 2 s warm-up excluded), Locust the same with
   ``constant_throughput``. wrk and Locust measure from the actual send (a closed loop hides queueing behind
   its own pacing); ``run_load`` from the intended time, its timer tick (≈ ±0.5 ms) included.

Not a test: on a shared machine the figures move; the load average is printed around each run. Exit status 0
unless a tool failed to run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SKIP_HEAD = 2
SERVER_CORE, TOOL_CORE = "0", "1"

SERVER = r'''
import asyncio, sys, time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
count = 0

class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        global count
        buffer, answered = self.buffer + data, 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length:]
            answered += 1
        self.buffer = buffer
        if answered:
            count += answered
            self.transport.write(RESPONSE * answered)

async def report():
    global count
    second = int(time.time()) + 1
    while True:
        await asyncio.sleep(max(0.0, second - time.time()))
        print(second, count, flush=True)
        count = 0
        second += 1

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Hello, "127.0.0.1", 0, backlog=4096)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await report()

import uvloop
uvloop.run(main())
'''

LOCUSTFILE = '''
import os
from locust import FastHttpUser, constant, constant_throughput, task

class Hello(FastHttpUser):
    rate = float(os.environ.get("BENCH_USER_RATE", "0"))
    wait_time = constant_throughput(rate) if rate else constant(0)

    @task
    def hello(self):
        self.client.get("/")
'''

PACE_LUA = "function delay()\n   return {ms}\nend\n"


class Server:
    """The hello server on core 0; ``counts`` maps each wall-clock second to the requests answered in it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(pinned(SERVER_CORE, [PY, "-c", SERVER]), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()
        self.port = int(first[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self.counts: dict[int, int] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            second, count = line.split()
            self.counts[int(second)] = int(count)

    def rate(self, start: float, end: float) -> float:
        """Median requests/s over the steady seconds of [start, end]."""
        time.sleep(1.2)  # the last second's line
        busy = [c for s, c in sorted(self.counts.items()) if start <= s - 1 and s <= end + 1 and c > 0]
        steady = busy[SKIP_HEAD:-1] or busy
        return float(statistics.median(steady)) if steady else 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def pinned(core: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", core, *cmd] if shutil.which("taskset") else cmd


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(cmd: list[str], **kw: Any) -> tuple[subprocess.CompletedProcess[str], float, float]:
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return done, start, time.time()


# --------------------------------------------------------------------------- the tools


def wrk(server: Server, seconds: int, connections: int, delay_ms: float | None, work: Path) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if delay_ms is not None:
        script = work / "pace.lua"
        script.write_text(PACE_LUA.format(ms=delay_ms))
        cmd += ["-s", str(script)]
    done, start, end = timed(pinned(TOOL_CORE, [*cmd, server.url]))
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[:500]}")
    out: dict[str, Any] = {"tool": "wrk", "server_rps": server.rate(start, end)}
    for line in done.stdout.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            out["tool_rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            out[f"p{parts[0][:-1]}_ms"] = _wrk_ms(parts[1])
    return out


def _wrk_ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 3)
    return float(text)


def locust(server: Server, seconds: int, users: int, user_rate: float, work: Path) -> dict[str, Any]:
    locustfile = work / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = work / "locust"
    binary = str(Path(PY).with_name("locust"))
    cmd = [binary, "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(max(users, 100)),
           "-t", f"{seconds}s", "-H", server.url.rstrip("/"), "--only-summary", "--csv", str(prefix),
           "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    env = {**os.environ, "BENCH_USER_RATE": str(user_rate)}
    done, start, end = timed(pinned(TOOL_CORE, cmd), env=env, cwd=work)
    if done.returncode != 0:
        raise RuntimeError(f"locust failed: {done.stderr.strip()[-500:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"tool": "locust", "server_rps": server.rate(start, end), "tool_rps": float(row["Requests/s"]),
            "p50_ms": float(row["50%"]), "p90_ms": float(row["90%"]), "p99_ms": float(row["99%"]),
            "failures": int(row["Failure Count"])}


def run_load_tool(server: Server, rate: float, seconds: float, warmup: float, ramp: list[float] | None,
                  work: Path) -> dict[str, Any]:
    """``run_load`` in its own process pinned to the tool core (its one generator process inherits the pin)."""
    spec = {"url": server.url, "rate": rate, "duration": seconds, "warmup": warmup, "ramp": ramp or [],
            "evidence": str(work / "evidence")}
    done, start, end = timed(pinned(TOOL_CORE, [PY, __file__, "--child", json.dumps(spec)]), cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"run_load failed: {done.stderr.strip()[-800:]}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    if run.get("error") or run.get("refused"):
        raise RuntimeError(f"run_load: {run.get('error') or run.get('refused')}")
    steps = run["steps"]
    last = steps[-1]
    out: dict[str, Any] = {"tool": "run_load", "server_rps": server.rate(start, end),
                           "tool_rps": last["achieved_rps"], "p50_ms": last["latency_ms"]["p50"],
                           "p90_ms": last["latency_ms"]["p90"], "p99_ms": last["latency_ms"]["p99"],
                           "cpu": last["generator"]["cpu"], "lateness_ms": last["generator"]["lateness_ms"],
                           "errors": last["errors"]}
    if ramp:
        out["ramp"] = [{"offered": s["offered_rps"], "achieved": s["achieved_rps"], "cpu": s["generator"]["cpu"][0],
                        "lateness_p99_ms": s["generator"]["lateness_ms"]["p99"], "p99_ms": s["latency_ms"]["p99"]}
                       for s in steps]
        sustained = [s for s in out["ramp"] if s["achieved"] >= 0.98 * s["offered"]
                     and (s["lateness_p99_ms"] or 0) <= 10.0 and s["cpu"] <= 0.9]
        out["sustained_rps"] = max((s["offered"] for s in sustained), default=0.0)
    return out


def child(spec_json: str) -> None:
    sys.path.insert(0, str(ROOT))
    from tasks.load_generator import LoadPlan, LoadTarget, run_load

    spec = json.loads(spec_json)
    plan = LoadPlan(rate=spec["rate"], duration=spec["duration"], warmup=spec["warmup"], ramp=spec["ramp"],
                    processes=1, connections=64, timeout=30, max_requests=10_000_000)
    run = run_load(LoadTarget(url=spec["url"], method="GET"), plan, [b""], Path(spec["evidence"]),
                   allowed_hosts=["127.0.0.1"])
    for step in run.steps:
        step.hdr = ""
        step.timeline = []
    print(run.model_dump_json())


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each closed-loop / paced run")
    parser.add_argument("--rate", type=float, default=2000.0, help="the matched rate of the p99 comparison")
    parser.add_argument("--flood", type=float, default=100000.0, help="run_load's offered rate for its maximum")
    parser.add_argument("--ramp", default="20000,25000,30000,35000,40000,45000,50000,55000,60000",
                        help="run_load's ramp for the sustained rate (requests/s, comma-separated)")
    parser.add_argument("--wrk-connections", type=int, default=20)
    parser.add_argument("--tools", default="wrk,locust,run_load")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    tools = set(args.tools.split(","))
    if "wrk" in tools and not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), or brew install wrk", file=sys.stderr)
        tools.discard("wrk")
    if "locust" in tools and not Path(PY).with_name("locust").exists():
        print("Locust is not installed: pip install -c constraints.txt -e '.[bench]'", file=sys.stderr)
        tools.discard("locust")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
        "cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(), "max": {}, "matched": {}}
    server = Server()
    rate = args.rate
    try:
        with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
            work = Path(tmp)
            print(f"server {server.url} on core {SERVER_CORE}; tools on core {TOOL_CORE}", file=sys.stderr)
            # 1. most requests/s on one core
            if "wrk" in tools:
                results["max"]["wrk"] = report("max", wrk(server, args.seconds, 64, None, work))
            if "locust" in tools:
                results["max"]["locust"] = report("max", locust(server, args.seconds, 64, 0.0, work))
            if "run_load" in tools:
                results["max"]["run_load"] = report("max", run_load_tool(server, args.flood, args.seconds, 0, None,
                                                                         work))
                ramp = [float(r) for r in args.ramp.split(",")]
                results["max"]["run_load_ramp"] = report("ramp", run_load_tool(server, ramp[0], 4, 1, ramp, work))
            # 2. p99 at the same throughput
            if "wrk" in tools:
                delay = round(args.wrk_connections / rate * 1000.0, 3)
                results["matched"]["wrk"] = report("matched", wrk(server, args.seconds, args.wrk_connections, delay,
                                                                  work))
                rate = round(results["matched"]["wrk"]["tool_rps"])
            if "run_load" in tools:
                results["matched"]["run_load"] = report("matched", run_load_tool(server, rate, args.seconds, 2, None,
                                                                                 work))
            if "locust" in tools:
                users = 20
                results["matched"]["locust"] = report("matched", locust(server, args.seconds, users, rate / users,
                                                                        work))
    finally:
        server.stop()
    results["matched_rate"] = rate
    summary(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(what: str, result: dict[str, Any]) -> dict[str, Any]:
    result["load_average"] = load_average()
    print(f"{what:8} {json.dumps(result)}", file=sys.stderr)
    return result


def summary(results: dict[str, Any]) -> None:
    m, r = results["max"], results["matched"]
    print(f"\n{results['date']}, {results['machine']}, {results['cpus']} × {results['cpu']}, "
          f"Python {results['python']}")
    print("\n| most requests/s on one core | server-counted rps | tool-reported rps | load average |")
    print("|---|---:|---:|---|")
    for tool, res in m.items():
        print(f"| {tool} | {res['server_rps']:.0f} | {res.get('tool_rps', 0):.0f} | {res['load_average']} |")
    if "run_load_ramp" in m:
        sustained = m["run_load_ramp"]["sustained_rps"]
        print(f"\nrun_load sustained (achieved ≥ 98 %, lateness p99 ≤ 10 ms, cpu ≤ 0.9): {sustained:.0f} rps; ramp: "
              + ", ".join(f"{s['offered']:.0f}→{s['achieved']:.0f} (cpu {s['cpu']:.2f}, late p99 "
                                         f"{s['lateness_p99_ms']} ms)" for s in m["run_load_ramp"]["ramp"]))
    if "run_load" in m and "locust" in m and m["locust"]["server_rps"]:
        print(f"\nrun_load / Locust per core: {m['run_load']['server_rps'] / m['locust']['server_rps']:.2f}×")
    if "run_load" in m and "wrk" in m and m["wrk"]["server_rps"]:
        print(f"run_load / wrk per core: {m['run_load']['server_rps'] / m['wrk']['server_rps']:.2f}×")
    print(f"\n| at {results['matched_rate']} rps | server rps | p50 ms | p90 ms | p99 ms | load average |")
    print("|---|---:|---:|---:|---:|---|")
    for tool, res in r.items():
        print(f"| {tool} | {res['server_rps']:.0f} | {res.get('p50_ms')} | {res.get('p90_ms')} | {res.get('p99_ms')} "
              f"| {res['load_average']} |")
    if "run_load" in r and "wrk" in r and r["wrk"].get("p99_ms"):
        print(f"\nrun_load p99 / wrk p99: {r['run_load']['p99_ms'] / r['wrk']['p99_ms']:.2f}×")


if __name__ == "__main__":
    sys.exit(main())

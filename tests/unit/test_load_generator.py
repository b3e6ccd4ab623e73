"""The load generator (tasks/load_generator, issue 15) against a real local HTTP server with injected latency/errors.

The server runs in its own process (aiohttp, uvloop when importable) and behaves by path:
``/ok``; ``/sleep/<ms>`` answers after that long; ``/status/<code>``; ``/every/<n>/<code>/<tag>`` answers
``code`` to every n-th request on that path (deterministic errors); ``/endpoints/<name>/invocations`` is a fake
SageMaker runtime whose answer depends on the body; ``GET /__count?path=…`` says how many requests a path got.
Steps are short (≤ 1.5 s) so the whole file runs in well under 25 s on a busy 2-core machine.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.load_generator import LoadPlan, LoadRun, LoadTarget, http1, run_load
from tasks.load_generator.allowlist import check_target, normalise_host
from tasks.load_generator.run import allowed_hosts_setting
from tasks.load_generator.sagemaker import classify_client_error
from tasks.load_generator.schedule import build_phases
from tasks.load_generator.worker import E4XX, E5XX

SERVER = r'''
import asyncio, json, sys
from aiohttp import web

counts = {}

async def handle(request):
    body = await request.read()
    path = request.path
    counts[path] = counts.get(path, 0) + 1
    parts = path.strip("/").split("/")
    if parts[0] == "sleep":
        await asyncio.sleep(int(parts[1]) / 1000)
    elif parts[0] == "status":
        return web.Response(status=int(parts[1]), text="no")
    elif parts[0] == "every" and counts[path] % int(parts[1]) == 0:
        return web.Response(status=int(parts[2]), text="no")
    elif parts[0] == "endpoints":
        return sagemaker(request, body)
    return web.Response(text="ok")

def aws_error(status, kind, **extra):
    return web.Response(status=status, text=json.dumps({"message": "no", **extra}),
                        headers={"x-amzn-ErrorType": kind, "Content-Type": "application/json"})

def sagemaker(request, body):
    if "authorization" not in request.headers:
        return aws_error(403, "MissingAuthenticationToken")
    if body == b"model-500":
        return aws_error(424, "ModelError", OriginalStatusCode=500)
    if body == b"model-400":
        return aws_error(424, "ModelError", OriginalStatusCode=400)
    if body == b"throttle":
        return aws_error(400, "ThrottlingException")
    if body == b"unavailable":
        return aws_error(503, "ServiceUnavailable")
    return web.Response(text='{"predictions": [0.5]}', content_type="application/json")

async def count(request):
    return web.json_response(counts.get(request.query["path"], 0))

async def main():
    app = web.Application()
    app.router.add_get("/__count", count)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
'''

ALLOWED = ["127.0.0.1"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def served(base: str, path: str) -> int:
    with urllib.request.urlopen(f"{base}/__count?path={path}", timeout=60) as resp:
        return int(json.loads(resp.read()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(url: str, tmp: Path, bodies: list[bytes] | None = None, **plan: object) -> LoadRun:
    # the timeout is a hang guard here, not a limit under test (the tests of timeouts pass their own): a unit
    # session starved beside the server halves has seen a local answer take 5.7 s
    settings: dict[str, object] = {"warmup": 0, "timeout": 60, "processes": 2, "connections": 64, **plan}
    return run_load(LoadTarget(url=url), LoadPlan.model_validate(settings), bodies or [b"{}"], tmp,
                    allowed_hosts=ALLOWED)


def invariant(run: LoadRun) -> None:
    assert run.refused is None and run.error is None, run
    for step in run.steps:
        assert step.sent == step.ok + sum(step.errors.values())
        assert step.sent == sum(p.sent for p in step.timeline)
    LoadRun.model_validate_json(run.model_dump_json())  # JSON-able, round trip


# --------------------------------------------------------------------------- latency, coordinated omission


def test_constant_latency_is_measured_within_tolerance_and_evidence_is_written(server: str, tmp_path: Path) -> None:
    """Injected 50 ms: 50 ≤ p50 ≤ 65 ms (the tolerance: the server's timer and a busy machine's scheduling)."""
    run = load(f"{server}/sleep/50", tmp_path, rate=100, duration=1.2, warmup=0.2)
    invariant(run)
    (step,) = run.steps
    assert step.sent == 120 and step.ok == 120 and step.achieved_rps == 100.0
    assert step.latency_ms.p50 is not None and 50.0 <= step.latency_ms.p50 <= 65.0, step.latency_ms
    assert step.latency_ms.max is not None and step.latency_ms.max >= 50.0
    assert [p.t for p in step.timeline] == [1, 2] and [p.sent for p in step.timeline] == [100, 20]
    assert step.generator.processes == 2 and len(step.generator.cpu) == 2
    assert served(server, "/sleep/50") == 120 + 20  # the warm-up was sent, and left out of the results
    names = {e.name: e for e in run.evidence}
    assert set(names) == {"load_test_latency_over_time.png", "load_test_latency_distribution.png",
                          "load_test_timeline.jsonl"}
    for item in run.evidence:
        data = Path(item.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item.sha256
        if item.name.endswith(".png"):
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    rows = [json.loads(line) for line in Path(names["load_test_timeline.jsonl"].path).read_text().splitlines()]
    assert [(r["step"], r["t"], r["sent"]) for r in rows] == [(0, 1, 100), (0, 2, 20)]


def test_a_stalled_server_shows_latency_from_the_intended_send_time(server: str, tmp_path: Path) -> None:
    """100 ms per request, one connection, 20 rps offered: requests queue for the connection. A closed loop would
    report 100 ms for every request; measured from the intended time, request k waits (k+1)·100 − k·50 ms."""
    run = load(f"{server}/sleep/100", tmp_path, rate=20, duration=0.5, processes=1, connections=1)
    invariant(run)
    (step,) = run.steps
    assert step.ok == 10
    assert step.latency_ms.p50 is not None and step.latency_ms.p50 >= 280, step.latency_ms  # ~ 300
    assert step.latency_ms.max is not None and step.latency_ms.max >= 530, step.latency_ms  # ~ 550
    assert step.achieved_rps == 20.0  # every request was answered: only the latency tells


def test_a_generator_pushed_past_what_it_can_send_reports_its_lateness(server: str, tmp_path: Path) -> None:
    """1,000,000 requests/s from one process: it cannot start them on time, and says so (its CPU share is reported
    too, but on a shared machine it need not reach the gate's 0.9). It starts a request in a few µs (~250k/s), and
    past MAX_IN_FLIGHT (20,000) requests in flight it waits for answers: the last fifth leaves late by the time the
    server takes to answer thousands. (50,000/s for 0.1 s no longer saturates it: it starts those on time, and
    they queue for the 8 connections to a server slower than it — counted in their latency, as they should be.)"""
    run = load(f"{server}/ok", tmp_path, rate=1_000_000, duration=0.025, processes=1, connections=8, timeout=20)
    invariant(run)
    (step,) = run.steps
    assert step.sent == 25_000
    late = step.generator.lateness_ms
    assert late.p99 is not None and late.p99 > 50, late  # far past the 10 ms a gate allows
    assert 0 < step.generator.cpu[0] <= 1.05, step.generator


# --------------------------------------------------------------------------- errors


def test_deterministic_errors_are_counted_exactly(server: str, tmp_path: Path) -> None:
    path = "/every/20/500/exact"
    run = load(f"{server}{path}", tmp_path, rate=200, duration=0.6)
    invariant(run)
    (step,) = run.steps
    assert step.sent == 120 and served(server, path) == 120
    assert step.errors == {"timeout": 0, "4xx": 0, "5xx": 6, "connection": 0}
    assert step.ok == 114 and step.achieved_rps == 190.0
    assert sum(p.errors for p in step.timeline) == 6


def test_error_classes(server: str, tmp_path: Path) -> None:
    cases = {
        "4xx": (f"{server}/status/404", {}),
        "5xx": (f"{server}/status/503", {}),
        "timeout": (f"{server}/sleep/2000", {"timeout": 0.2}),
        "connection": (f"http://127.0.0.1:{free_port()}/predict", {}),
        # 300 ms answers through one connection, 20/s offered: request k is answered ~(300 + 250·k) ms after its
        # intended time, so with the wait for the connection counted in the 2 s timeout the first ~7 are ok and the
        # rest time out (without it all 10 would be ok). 2 s, not less: a starved moment must not time out the first
        "pool": (f"{server}/sleep/300", {"timeout": 2.0, "connections": 1}),
    }
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {kind: pool.submit(load, url, tmp_path / kind, rate=20, duration=0.5, processes=1, **plan)
                   for kind, (url, plan) in cases.items()}
        runs = {kind: f.result() for kind, f in futures.items()}
    pooled = runs.pop("pool").steps[0]
    assert pooled.sent == 10 and pooled.ok >= 1 and pooled.errors["timeout"] >= 1, pooled
    assert pooled.ok + pooled.errors["timeout"] == 10
    for kind, run in runs.items():
        invariant(run)
        (step,) = run.steps
        assert step.sent == 10 and step.ok == 0, (kind, step)
        assert step.errors[kind] == 10, (kind, step.errors)
        assert step.latency_ms.p50 is None and step.achieved_rps == 0.0


def test_a_ramp_gives_one_step_per_rate(server: str, tmp_path: Path) -> None:
    run = load(f"{server}/sleep/1", tmp_path, ramp=[40, 80, 160], duration=0.25, warmup=0.1, max_requests=54)
    invariant(run)  # 4 warm-up, 10, 20, then 20 of the 40 the last step wanted (cut to 0.125 s)
    assert [(s.offered_rps, s.sent, s.ok, s.duration_s) for s in run.steps] == [
        (40.0, 10, 10, 0.25), (80.0, 20, 20, 0.25), (160.0, 20, 20, 0.125)]
    assert served(server, "/sleep/1") == 54


# --------------------------------------------------------------------------- refusal and hostile input


def test_a_refused_target_is_sent_nothing(server: str, tmp_path: Path) -> None:
    url = f"{server}/every/1/500/refused"
    target = LoadTarget(url=url.replace("127.0.0.1", "localhost"), headers={"Authorization": "Bearer s3cret"})
    run = run_load(target, LoadPlan(rate=100, duration=0.2, warmup=0), [b"{}"], tmp_path, allowed_hosts=ALLOWED)
    assert run.refused is not None and "localhost" in run.refused and not run.steps and not run.evidence
    empty = run_load(LoadTarget(url=url), LoadPlan(rate=100, duration=0.2, warmup=0), [b"{}"], tmp_path,
                     allowed_hosts=[])
    assert empty.refused is not None and "empty" in empty.refused
    assert served(server, "/every/1/500/refused") == 0
    assert "s3cret" not in run.model_dump_json() + repr(target) + str(target)
    assert not list(tmp_path.iterdir())


def test_the_allowlist_comes_from_the_settings(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clearance.settings import get_settings

    port = server.rsplit(":", 1)[1]
    monkeypatch.setenv("CLEARANCE_LOAD_TEST_ALLOWED_HOSTS", f"localhost:{port}, sagemaker:churn-prod")
    get_settings.cache_clear()
    try:
        assert allowed_hosts_setting() == [f"localhost:{port}", "sagemaker:churn-prod"]
        run = run_load(LoadTarget(url=f"{server}/ok"), LoadPlan(rate=10, duration=0.1, warmup=0), [b""], tmp_path)
        assert run.refused is not None and "127.0.0.1" in run.refused and "2 entries" in run.refused
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(("url", "allowed", "refused"), [
    ("http://127.0.0.1:8081/p", ["127.0.0.1"], False),
    ("http://127.0.0.1:8081/p", ["127.0.0.1:8081"], False),
    ("http://127.0.0.1:8081/p", ["127.0.0.1:8082"], True),
    ("http://127.0.0.1/p", ["127.0.0.1:80"], False),
    ("https://127.0.0.1/p", ["127.0.0.1:80"], True),
    ("http://LOCALHOST:8081/", ["localhost"], False),
    ("http://localhost.:8081/", ["LocalHost"], False),
    ("http://[::1]:8081/", ["::1"], False),
    ("http://[0:0::1]:8081/", ["[::1]:8081"], False),
    ("http://[::1]:8081/", ["[::1]:9"], True),
    ("http://api.models.example.com/", ["*.example.com"], False),
    ("http://example.com/", ["*.example.com"], True),
    ("http://evil-example.com/", ["*.example.com"], True),
    ("http://api.example.com:8443/", ["*.example.com:8443"], False),
    ("http://api.example.com:8444/", ["*.example.com:8443"], True),
    ("http://2130706433/", ["127.0.0.1"], True),  # names are compared as written, never resolved
    ("ftp://127.0.0.1/", ["127.0.0.1"], True),
    ("file:///etc/passwd", ["127.0.0.1"], True),
    ("http://user:pw@127.0.0.1/", ["127.0.0.1"], True),
    ("http://127.0.0.1:99999/", ["127.0.0.1"], True),
    ("http://127.0.0.1/a b", ["127.0.0.1"], True),
    ("http://exa_mple.com\\@127.0.0.1/", ["127.0.0.1"], True),
    ("http://127.0.0.1/", ["sagemaker:127.0.0.1"], True),
])
def test_allowlist(url: str, allowed: list[str], refused: bool) -> None:
    assert (check_target(LoadTarget(url=url), allowed) is not None) is refused


def test_allowlist_for_sagemaker() -> None:
    target = LoadTarget(kind="sagemaker", endpoint_name="churn-prod", region="eu-west-1")
    assert check_target(target, ["sagemaker:churn-prod"]) is None
    assert check_target(target, ["sagemaker:Churn-Prod"]) is None
    assert check_target(target, ["churn-prod", "sagemaker:other"]) is not None
    custom = target.model_copy(update={"endpoint_url": "http://127.0.0.1:9/"})
    assert check_target(custom, ["sagemaker:churn-prod"]) is not None  # its endpoint_url host must be listed too
    assert check_target(custom, ["sagemaker:churn-prod", "127.0.0.1:9"]) is None
    bad = LoadTarget(kind="sagemaker", endpoint_name="churn/../x", region="eu-west-1")
    assert check_target(bad, ["sagemaker:churn/../x"]) is not None
    assert normalise_host("[::FFFF:127.0.0.1]") == "::ffff:7f00:1"


def test_hostile_inputs_are_bounded(tmp_path: Path) -> None:
    plan = LoadPlan(rate=10, duration=0.1, warmup=0)
    target = LoadTarget(url="http://127.0.0.1:9/")
    too_big = run_load(target, plan, [b"x" * (1024 * 1024 + 1)], tmp_path, allowed_hosts=ALLOWED)
    assert too_big.error is not None and "bytes" in too_big.error
    for headers in ({"X-A": "v\r\nX-Injected: 1"}, {"Bad Name": "v"}, {f"h{i}": "v" for i in range(65)}):
        with pytest.raises(ValidationError) as info:
            LoadTarget(url="http://127.0.0.1/", headers=headers)
        assert "X-Injected" not in str(info.value)
    with pytest.raises(ValidationError):
        LoadPlan(rate=10, duration="11m")
    with pytest.raises(ValidationError):
        LoadPlan(rate=0)
    assert LoadPlan(duration="20s", warmup="1m", timeout="2s").model_dump()["warmup"] == 60.0


def test_schedule_is_bounded_by_max_requests() -> None:
    phases = build_phases(LoadPlan(ramp=[100, 200, 400], duration=1, warmup=0.5, max_requests=300))
    assert [(p.step, p.rate, p.count, p.duration, p.start) for p in phases] == [
        (None, 100, 50, 0.5, 0.0), (0, 100, 100, 1.0, 0.5), (1, 200, 150, 0.75, 1.5)]
    assert sum(p.share(j, 3) for p in phases for j in range(3)) == 300
    assert [phases[1].share(j, 3) for j in range(3)] == [34, 33, 33]


# --------------------------------------------------------------------------- SageMaker


def test_sagemaker_target_and_its_error_classes(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    target = LoadTarget(kind="sagemaker", endpoint_name="churn-prod", region="eu-west-1", endpoint_url=server)
    bodies = [b'{"instances": [[1]]}', b"model-500", b"model-400", b"throttle", b"unavailable"]
    run = run_load(target, LoadPlan(rate=50, duration=0.5, warmup=0, processes=1, connections=4, timeout=60),
                   bodies, tmp_path, allowed_hosts=["sagemaker:churn-prod", "127.0.0.1"])
    invariant(run)
    (step,) = run.steps
    assert run.target == "sagemaker:churn-prod"
    assert step.sent == 25 and step.ok == 5
    assert step.errors == {"timeout": 0, "4xx": 10, "5xx": 10, "connection": 0}
    assert step.latency_ms.p50 is not None
    assert served(server, "/endpoints/churn-prod/invocations") == 25


def test_sagemaker_error_mapping() -> None:
    def error(code: str, status: int, **members: object) -> dict[str, object]:
        return {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}, **members}

    assert classify_client_error(error("ModelError", 424, OriginalStatusCode=503)) == E5XX
    assert classify_client_error(error("ModelError", 424, OriginalStatusCode="422")) == E4XX
    assert classify_client_error(error("ModelError", 424)) == E5XX
    assert classify_client_error(error("ThrottlingException", 400)) == E4XX
    assert classify_client_error(error("ModelNotReadyException", 429)) == E4XX
    assert classify_client_error(error("InternalDependencyException", 530)) == E5XX
    assert classify_client_error(error("Whatever", 403)) == E4XX
    assert classify_client_error({}) == E5XX


def test_per_second_percentiles_agree_with_hdr() -> None:
    from tasks.load_generator.merge import sparse, sparse_percentile
    from tasks.load_generator.worker import new_histogram

    h = new_histogram()
    for i in range(1, 5001):
        h.record_value(i * 37)
    values, counts = sparse(h)
    for p in (1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0):
        assert sparse_percentile(values, counts, p) == h.get_value_at_percentile(p), p
    assert sparse_percentile(values[:0], counts[:0], 50.0) is None


# --------------------------------------------------------------------------- the HTTP/1.1 client (http1)


class Scripted:
    """An in-process HTTP/1.1 server answering by path in ways the load generator's server does not: chunked,
    ``Connection: close``, an answer written in pieces, cut short, framed by the end of the connection, too slow,
    too large, not HTTP. It counts connections and keeps each request's head."""

    ANSWERS = {
        "/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "/chunked": b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "/close": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        "/cut": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "/eof": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        "/big": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
        "/garbage": b"NOT HTTP AT ALL\r\n\r\n",
        "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    }

    def __init__(self) -> None:
        self.connections = 0
        self.heads: list[bytes] = []
        self.port = 0

    async def start(self) -> Any:
        import asyncio

        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def handle(self, reader: Any, writer: Any) -> None:
        import asyncio

        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/slow"):
                    await asyncio.sleep(1.0)
                    path = "/ok"
                if path == "/split":  # the chunked answer in 7-byte pieces, each its own read
                    answer = self.ANSWERS["/chunked"]
                    for i in range(0, len(answer), 7):
                        writer.write(answer[i:i + 7])
                        await writer.drain()
                        await asyncio.sleep(0.002)
                else:
                    writer.write(self.ANSWERS[path])
                    await writer.drain()
                if path in ("/close", "/cut", "/eof", "/garbage"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run_client(script: Callable[[Scripted], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``script(server)`` on uvloop (the generator's loop) against a fresh :class:`Scripted` server."""
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover
        import asyncio

        runner = asyncio.run

    async def main() -> Any:
        scripted = Scripted()
        server = await scripted.start()
        async with server:
            return await script(scripted)

    return runner(main())


def client(scripted: Scripted, limit: int = 4, timeout: float = 5.0, max_body: int = 1 << 20) -> http1.Pool:
    return http1.Pool(http1.parse_url(f"http://127.0.0.1:{scripted.port}/"), limit, timeout, max_body=max_body)


def get(scripted: Scripted, path: str) -> bytes:
    return http1.build_request("GET", http1.parse_url(f"http://127.0.0.1:{scripted.port}{path}"), {}, None)


def test_http1_chunked_answers_and_keep_alive() -> None:
    async def script(s: Scripted) -> tuple[list[int], int]:
        pool = client(s)
        statuses = [await pool.fetch(get(s, "/chunked")), await pool.fetch(get(s, "/ok")),
                    await pool.fetch(get(s, "/continue"))]  # an interim 100 is skipped: the 404 is the answer
        pool.close()
        return statuses, s.connections

    assert run_client(script) == ([201, 200, 404], 1)  # one keep-alive connection for all three


def test_http1_an_answer_split_across_reads() -> None:
    async def script(s: Scripted) -> tuple[list[int], int]:
        pool = client(s)
        statuses = [await pool.fetch(get(s, "/split")), await pool.fetch(get(s, "/ok"))]
        pool.close()
        return statuses, s.connections

    assert run_client(script) == ([201, 200], 1)


def test_http1_connection_close_from_the_server_reconnects() -> None:
    async def script(s: Scripted) -> tuple[list[int], int]:
        pool = client(s, limit=1)
        statuses = [await pool.fetch(get(s, "/close")), await pool.fetch(get(s, "/eof")),
                    await pool.fetch(get(s, "/ok"))]
        pool.close()
        return statuses, s.connections

    # Connection: close after the 503, a body framed by the end of the connection (HTTP/1.0): three connections
    assert run_client(script) == ([503, 200, 200], 3)


def test_http1_a_server_closing_mid_answer_or_talking_nonsense_is_a_connection_error() -> None:
    async def script(s: Scripted) -> tuple[list[int], int]:
        pool = client(s, limit=1, max_body=100)
        statuses = [await pool.fetch(get(s, path)) for path in ("/cut", "/ok", "/garbage", "/big", "/ok")]
        pool.close()
        return statuses, s.connections

    failed = http1.FAILED
    assert run_client(script) == ([failed, 200, failed, failed, 200], 4)  # /ok after /cut reuses nothing broken


def test_http1_timeouts_count_the_wait_for_a_connection_and_free_it() -> None:
    async def script(s: Scripted) -> tuple[list[int], int]:
        import asyncio

        # 0.9 s: under the server's 1 s (both timers on this one loop, so /slow times out however slow the machine)
        # and as much time as that allows for /ok's round trip on a starved moment
        pool = client(s, limit=1, timeout=0.9)
        slow = [asyncio.ensure_future(pool.fetch(get(s, f"/slow/{i}"))) for i in range(3)]
        statuses = list(await asyncio.gather(*slow))  # the first times out on the wire, the others waiting for it
        statuses.append(await pool.fetch(get(s, "/ok")))  # on a new connection: the timed-out one was closed
        pool.close()
        return statuses, s.connections

    timed_out = http1.TIMED_OUT
    statuses, connections = run_client(script)
    assert statuses == [timed_out, timed_out, timed_out, 200]
    assert connections >= 2


def test_http1_pool_limit_refused_connection_and_request_bytes() -> None:
    async def script(s: Scripted) -> tuple[list[int], int, int]:
        import asyncio

        pool = client(s, limit=2)
        statuses = list(await asyncio.gather(*(pool.fetch(get(s, "/ok")) for _ in range(20))))
        pool.close()
        refused = http1.Pool(http1.parse_url(f"http://127.0.0.1:{free_port()}/"), 2, 5.0)
        statuses += await asyncio.gather(*(refused.fetch(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(3)))
        refused.close()
        return statuses, s.connections, len(s.heads)

    statuses, connections, heads = run_client(script)
    assert statuses == [200] * 20 + [http1.FAILED] * 3 and connections == 2 and heads == 20

    target = http1.parse_url("http://[::1]:8081/p/a%20b?q=1")
    assert (target.host, target.port, target.path, target.host_header) == ("::1", 8081, "/p/a%20b?q=1", "[::1]:8081")
    assert http1.parse_url("https://example.com/").host_header == "example.com"
    assert http1.parse_url("https://example.com/").port == 443 and http1.parse_url("https://example.com/").tls
    assert http1.parse_url("http://example.com:80").path == "/"
    request = http1.build_request("POST", target, {"X-Key": "v", "content-length": "99"}, b'{"a": 1}')
    assert request == (b"POST /p/a%20b?q=1 HTTP/1.1\r\nHost: [::1]:8081\r\nAccept: */*\r\nX-Key: v\r\n"
                       b'Content-Length: 8\r\n\r\n{"a": 1}')
    assert http1.build_request("GET", target, {"Host": "h"}, None).startswith(
        b"GET /p/a%20b?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: h\r\n")


def test_http1_https_through_the_loop(tmp_path: Path) -> None:
    """TLS with a verifying context: a self-signed certificate for 127.0.0.1 (openssl), trusted by the client."""
    import shutil
    import ssl

    if not shutil.which("openssl"):  # pragma: no cover
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)

    async def script(s: Scripted) -> tuple[list[int], int]:
        import asyncio

        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        server = await asyncio.start_server(s.handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            target = http1.parse_url(f"https://127.0.0.1:{port}/ok")
            request = http1.build_request("GET", target, {}, None)
            pool = http1.Pool(target, 2, 5.0, ssl_context=ssl.create_default_context(cafile=str(cert)))
            statuses = [await pool.fetch(request), await pool.fetch(request)]
            pool.close()
            untrusted = http1.Pool(target, 2, 5.0)  # the system's CAs: the self-signed certificate is refused
            statuses.append(await untrusted.fetch(request))
            untrusted.close()
        return statuses, s.connections

    statuses, connections = run_client(script)
    assert statuses == [200, 200, http1.FAILED] and connections >= 1

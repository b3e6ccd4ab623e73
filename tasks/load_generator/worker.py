"""One generator process: an asyncio loop (uvloop when importable) sending its share of the schedule.

Open model: a dispatcher starts each request as its own task at its intended time (:mod:`schedule`) and never
waits for an earlier answer. Each request's latency runs from its *intended* send time to the end of its answer
body, so a slow server cannot hide queueing by slowing the generator (coordinated omission); its lateness — when
the request actually started minus when it was meant to — measures the generator itself (timers tick in
milliseconds: requests leave within about ±0.5 ms of their time, see :data:`EARLY_S`). A request waiting for
one of the ``connections`` pooled keep-alive connections counts that wait in its ``timeout``; a request the
dispatcher reaches more than ``timeout`` after its intended time (a saturated generator) is a timeout, never sent.
HTTP(S) goes through :mod:`http1` (a lean keep-alive client: the dispatcher writes a due request straight to an
idle connection, no task per request); SageMaker through boto3 in a thread pool, a task per request.

Results are kept per second of intended send time (HDR histograms in microseconds, 3 significant digits, of ok
latencies and of lateness; counts by outcome) and sent to the parent over a multiprocessing queue as soon as a
second has ended and all its requests are answered. Messages (tuples)::

    ("ready", process)
    ("second", process, phase, second, sent, ok, (timeout, 4xx, 5xx, connection), latency_hdr, lateness_hdr)
    ("cpu", process, [cpu share of each phase])          time.process_time over wall time
    ("done", process)
    ("error", process, message)

Nothing here logs or reports header values.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from tasks.load_generator import http1
from tasks.load_generator.schedule import Phase

HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000  # one hour
HDR_DIGITS = 3
OK, TIMEOUT, E4XX, E5XX, CONNECTION = range(5)
MAX_IN_FLIGHT = 20_000  # per process: past it the dispatcher waits (and its lateness shows it)
#: Requests due within this much of now leave now. Event-loop timers have millisecond resolution (uvloop rounds a
#: delay under 0.5 ms to "now"), so waiting for each due time exactly would spin: the dispatcher sleeps at least
#: 1 ms and then starts every request due by now + EARLY_S. One that leaves early has its latency measured from
#: when it left, and a lateness of 0; sends are thus within about ±0.5 ms of their intended times.
EARLY_S = 0.0005
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # an answer body is read and dropped chunk by chunk; past this: connection error


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def to_us(seconds: float) -> int:
    return min(HDR_HIGHEST_US, max(HDR_LOWEST_US, int(seconds * 1_000_000)))


@dataclass
class WorkerSpec:
    """Everything one process needs (pickled to it; holds header values: never printed)."""

    process: int
    processes: int
    phases: list[Phase]
    kind: str  # "http" | "sagemaker"
    url: str
    method: str
    headers: dict[str, str] = field(repr=False)
    content_type: str
    timeout: float
    connections: int
    bodies: list[bytes] = field(repr=False)
    endpoint_name: str = ""
    region: str = ""
    endpoint_url: str | None = None
    environ: dict[str, str] = field(default_factory=dict, repr=False)  # the parent's, as of run_load


class _Second:
    __slots__ = ("phase", "second", "sent", "ok", "errors", "latency", "lateness", "outstanding", "closed")

    def __init__(self, phase: int, second: int) -> None:
        self.phase, self.second = phase, second
        self.sent = self.ok = self.outstanding = 0
        self.errors = [0, 0, 0, 0]
        self.latency = new_histogram()
        self.lateness = new_histogram()
        self.closed = False


Sender = Callable[[float, bytes, _Second], Coroutine[Any, Any, None]]
#: starts one request (intended time, body, its second) and has it recorded (:meth:`Generator.record`) when it ends
Starter = Callable[[float, bytes, _Second], None]


class Generator:
    """The dispatcher and the bookkeeping of one process (the sender is HTTP or SageMaker)."""

    def __init__(self, spec: WorkerSpec, results: Any, base: float) -> None:
        self.spec, self.results, self.base = spec, results, base
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.room = asyncio.Event()
        self.idle = asyncio.Event()
        self.cpu_marks: list[tuple[float, float]] = []

    # bookkeeping -------------------------------------------------------------------------------------------
    def record(self, second: _Second, outcome: int, latency: float, lateness: float) -> None:
        second.lateness.record_value(to_us(lateness))
        if outcome == OK:
            second.ok += 1
            second.latency.record_value(to_us(latency))
        else:
            second.errors[outcome - 1] += 1
        second.outstanding -= 1
        if second.closed and second.outstanding == 0:
            self.flush(second)
        self.in_flight -= 1
        if self.in_flight < MAX_IN_FLIGHT:
            self.room.set()
        if self.in_flight == 0:
            self.idle.set()

    def flush(self, s: _Second) -> None:
        self.results.put(("second", self.spec.process, s.phase, s.second, s.sent, s.ok, tuple(s.errors),
                          s.latency.encode(), s.lateness.encode()))

    def close(self, s: _Second | None) -> None:
        if s is not None:
            s.closed = True
            if s.outstanding == 0:
                self.flush(s)

    def mark_cpu(self) -> None:
        self.cpu_marks.append((time.perf_counter(), time.process_time()))

    def cpu_shares(self) -> list[float]:
        return [round((c1 - c0) / (w1 - w0), 4) if w1 > w0 else 0.0
                for (w0, c0), (w1, c1) in zip(self.cpu_marks, self.cpu_marks[1:], strict=False)]

    # the dispatcher ----------------------------------------------------------------------------------------
    async def sleep_until(self, when: float) -> None:
        gap = when - time.perf_counter()
        if gap > 0:
            await asyncio.sleep(gap)

    def spawn(self, send: Sender) -> Starter:
        """A starter running each request as its own task (a coroutine sender: SageMaker's)."""
        loop, tasks = asyncio.get_running_loop(), self.tasks

        def start(due: float, body: bytes, second: _Second) -> None:
            task = loop.create_task(send(due, body, second))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return start

    async def run(self, start_request: Starter) -> None:
        spec, perf, base = self.spec, time.perf_counter, self.base
        j, n, bodies, timeout = spec.process, spec.processes, spec.bodies, spec.timeout
        for phase in spec.phases:
            await self.sleep_until(base + phase.start)
            self.mark_cpu()
            share, rate, start, first = phase.share(j, n), phase.rate, base + phase.start, phase.first_request
            current: _Second | None = None
            k = 0
            while k < share:
                gap = start + (j + k * n) / rate - perf()
                if gap > EARLY_S:  # never less than a timer tick (1 ms): a shorter sleep would spin
                    await asyncio.sleep(gap if gap >= 0.001 else 0.001)
                now = perf() + EARLY_S
                while k < share:
                    i = j + k * n
                    offset = i / rate
                    due = start + offset
                    if due > now:
                        break
                    sec = int(offset)
                    if current is None or current.second != sec:
                        self.close(current)
                        current = _Second(phase.index, sec)
                    if self.in_flight >= MAX_IN_FLIGHT:
                        self.room.clear()
                        await self.room.wait()
                    current.sent += 1
                    current.outstanding += 1
                    self.in_flight += 1
                    self.idle.clear()
                    late = now - EARLY_S - due
                    if late > timeout:  # so far behind that it could only time out: counted so, never sent
                        self.record(current, TIMEOUT, 0.0, late)
                        k += 1
                        continue
                    start_request(due, bodies[(first + i) % len(bodies)], current)
                    k += 1
            self.close(current)
        last = spec.phases[-1] if spec.phases else None
        if last is not None:
            await self.sleep_until(base + last.start + last.duration)
        self.mark_cpu()
        if self.in_flight:
            await self.idle.wait()


# HTTP ------------------------------------------------------------------------------------------------------


async def _run_http(spec: WorkerSpec, results: Any, base: float) -> list[float]:
    """Through :mod:`http1` (pre-serialised requests, a pool of keep-alive connections, httptools parsing)."""
    gen = Generator(spec, results, base)
    headers = {"User-Agent": "clearance-load-test", **spec.headers}
    if spec.method != "GET" and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = spec.content_type
    target = http1.parse_url(spec.url)
    send_body = spec.method != "GET"
    requests = {body: http1.build_request(spec.method, target, headers, body if send_body else None)
                for body in spec.bodies}  # built once per distinct body
    pool = http1.Pool(target, spec.connections, spec.timeout, max_body=MAX_ANSWER_BYTES)
    perf, record, submit, timed_out = time.perf_counter, gen.record, pool.submit, http1.TIMED_OUT

    def start(due: float, body: bytes, second: _Second) -> None:
        started = perf()

        def done(status: int) -> None:
            end = perf()
            if status >= 400:
                outcome = E4XX if status < 500 else E5XX
            elif status > 0:
                outcome = OK
            else:
                outcome = TIMEOUT if status == timed_out else CONNECTION
            record(second, outcome, end - (due if due > started else started), started - due)

        submit(requests[body], done)

    try:
        await gen.run(start)
    finally:
        pool.close()
    return gen.cpu_shares()


# SageMaker -------------------------------------------------------------------------------------------------


async def _run_sagemaker(spec: WorkerSpec, results: Any, base: float) -> list[float]:
    from concurrent.futures import ThreadPoolExecutor

    from tasks.load_generator.sagemaker import make_invoker

    invoke = make_invoker(spec)
    gen = Generator(spec, results, base)
    loop = asyncio.get_running_loop()
    perf = time.perf_counter
    with ThreadPoolExecutor(max_workers=spec.connections, thread_name_prefix="sagemaker") as pool:

        async def send(due: float, body: bytes, second: _Second) -> None:
            started = perf()
            outcome, end = CONNECTION, started
            try:
                outcome, end = await loop.run_in_executor(pool, invoke, body, started)
            finally:
                gen.record(second, outcome, end - max(due, started), started - due)

        await gen.run(gen.spawn(send))
    return gen.cpu_shares()


# the process -----------------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def worker_main(spec: WorkerSpec, results: Any, start: Any) -> None:
    """Entry point of a generator process: report ready, wait for the start time, run, report."""
    try:
        if spec.environ:  # a forkserver child starts with the server's environment: take the parent's
            os.environ.clear()
            os.environ.update(spec.environ)
        runner: Callable[[Any], Any] = asyncio.run
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
        if spec.kind == "http":
            body = _run_http
        else:
            from tasks.load_generator.sagemaker import check_credentials

            check_credentials(spec)
            body = _run_sagemaker
        results.put(("ready", spec.process))
        t0 = start.get(timeout=300)
        if t0 is None:  # the parent gave up before the start
            return
        gc.collect()
        gc.freeze()  # what is alive now is never scanned again, and collections are rarer: with thousands of
        gc.set_threshold(100_000, 20, 100)  # requests in flight, the default thresholds halve the send rate
        base = time.perf_counter() + (t0 - time.time())
        shares = runner(body(spec, results, base))
        results.put(("cpu", spec.process, shares))
        results.put(("done", spec.process))
    except BaseException as exc:
        results.put(("error", spec.process, _describe(exc)))
        raise

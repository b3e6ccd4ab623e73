"""A lean HTTP/1.1 client for the load generator's HTTP(S) target: keep-alive connections, one request at a time each.

aiohttp spends about 100 µs of CPU on a request, which capped a generator process at ~7.5k requests/s (issue 15).
Here a request costs a few dictionary and deque operations, one timer, one ``transport.write`` of bytes built once
per body, and an ``httptools`` (llhttp) parse of the answer:

* :func:`parse_url` and :func:`build_request` serialise the request line, the headers and the body once;
* :class:`Pool` holds at most ``limit`` connections (an ``asyncio.Protocol`` each, on the running loop — uvloop's
  in the generator), hands each :meth:`Pool.submit`-ted request to an idle connection or queues it (oldest first)
  until one is free or a new one is connected; no pipelining;
* each request has one deadline, ``timeout`` after its submission: the wait for a connection counts. A request that
  misses it ends as :data:`TIMED_OUT` and the connection serving it, if any, is closed (its answer would arrive
  late on it); a refused or failed connection, an answer that cannot be parsed, one larger than ``max_body`` or cut
  short by the server ends as :data:`FAILED`. Otherwise the request ends with its HTTP status code.

The body of an answer is counted and dropped. ``Connection: close`` from the server (or an HTTP/1.0 answer) closes
the connection after the answer; the next request gets a new one. An answer framed by the end of the connection
(no Content-Length, not chunked) is complete when the server closes. HTTPS goes through the loop's
``create_connection(ssl=...)`` with a default (verifying) SSL context. A connection the server closed while idle is
dropped, and the request already written on a connection that the server closed at that moment fails (no retry).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httptools
from yarl import URL

TIMED_OUT = -1
FAILED = -2
#: called once per request, with the HTTP status code, :data:`TIMED_OUT` or :data:`FAILED`
Done = Callable[[int], None]
#: headers this module writes itself (a caller's are dropped)
OWN_HEADERS = frozenset({"content-length", "transfer-encoding"})


@dataclass(frozen=True)
class Target:
    host: str  # to connect to (an IPv6 address without brackets)
    port: int
    tls: bool
    path: str  # the request target: path and query, percent-encoded
    host_header: str


def parse_url(url: str) -> Target:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError("an http(s) URL with a host is needed")
    host = parsed.raw_host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    if parsed.explicit_port is not None and not parsed.is_default_port():
        shown = f"{shown}:{port}"
    return Target(host=host, port=port, tls=parsed.scheme == "https", path=parsed.raw_path_qs or "/",
                  host_header=shown)


def build_request(method: str, target: Target, headers: dict[str, str], body: bytes | None) -> bytes:
    """The whole request, ready to write. ``body`` None: no body and no Content-Length (a GET)."""
    names = {name.lower() for name in headers}
    lines = [f"{method} {target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in OWN_HEADERS]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")


class _Exchange:
    """One request: its bytes, its callback, its deadline, and the connection serving it (once it has one)."""

    __slots__ = ("data", "done", "timer", "conn", "finished")

    def __init__(self, data: bytes, done: Done) -> None:
        self.data, self.done = data, done
        self.timer: asyncio.TimerHandle | None = None
        self.conn: _Connection | None = None
        self.finished = False


class Pool:
    """At most ``limit`` keep-alive connections to one target; requests wait for one in arrival order."""

    def __init__(self, target: Target, limit: int, timeout: float, max_body: int = 64 * 1024 * 1024,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.target, self.limit, self.timeout, self.max_body = target, limit, timeout, max_body
        self.ssl: ssl.SSLContext | None = None
        if target.tls:
            self.ssl = ssl_context or ssl.create_default_context()
        self.idle: list[_Connection] = []  # most recently used last
        self.queue: deque[_Exchange] = deque()
        self.open = 0  # connected or connecting
        self.connecting = 0
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    # the caller's side ---------------------------------------------------------------------------------------
    def submit(self, data: bytes, done: Done) -> None:
        """Send ``data`` on a free connection (now, or when one is free) and call ``done`` once with the outcome."""
        ex = _Exchange(data, done)
        ex.timer = self.loop.call_later(self.timeout, self._expire, ex)
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.dead:
                conn.send(ex)
                return
        self.queue.append(ex)
        if self.open < self.limit and len(self.queue) > self.connecting:
            self._connect()

    async def fetch(self, data: bytes) -> int:
        """:meth:`submit` as a coroutine (for tests and one-off requests)."""
        fut: asyncio.Future[int] = self.loop.create_future()

        def done(status: int) -> None:
            if not fut.done():
                fut.set_result(status)

        self.submit(data, done)
        return await fut

    def close(self) -> None:
        """Close every connection; a request not answered yet ends as :data:`FAILED`."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        for conn in list(self.connections):
            conn.fail()
        while self.queue:
            self._finish(self.queue.popleft(), FAILED)

    # connections ---------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self.open += 1
        self.connecting += 1
        task = self.loop.create_task(self._open())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _open(self) -> None:
        conn = _Connection(self)
        t = self.target
        try:
            transport, _ = await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, t.host, t.port, ssl=self.ssl,
                                            server_hostname=t.host if self.ssl else None), self.timeout)
        except (OSError, TimeoutError, ValueError):  # refused, unreachable, unresolvable, TLS (an OSError)
            self.connecting -= 1
            self.open -= 1
            self._fail_oldest()
            self._refill()
            return
        self.connecting -= 1
        if conn.dead:  # lost between connection_made and here
            return
        conn.transport = transport  # uvloop may call connection_made after create_connection returns
        if self.closed:
            conn.drop()
            return
        self.connections.add(conn)
        self._ready(conn)

    def _ready(self, conn: _Connection) -> None:
        """``conn`` is free: give it the oldest waiting request, or keep it idle."""
        queue = self.queue
        while queue:
            ex = queue.popleft()
            if not ex.finished:
                conn.send(ex)
                return
        self.idle.append(conn)

    def _refill(self) -> None:
        queue = self.queue
        while queue and queue[0].finished:
            queue.popleft()
        while not self.closed and self.open < self.limit and len(queue) > self.connecting:
            self._connect()

    def _fail_oldest(self) -> None:
        queue = self.queue
        while queue:
            ex = queue.popleft()
            if not ex.finished:
                self._finish(ex, FAILED)
                return

    def _lost(self, conn: _Connection) -> None:
        self.open -= 1
        self.connections.discard(conn)
        self._refill()

    # outcomes ------------------------------------------------------------------------------------------------
    def _finish(self, ex: _Exchange, status: int) -> None:
        if ex.finished:
            return
        ex.finished = True
        if ex.timer is not None:
            ex.timer.cancel()
        ex.done(status)

    def _expire(self, ex: _Exchange) -> None:
        if ex.finished:
            return
        ex.finished = True
        if ex.conn is not None:
            ex.conn.drop()  # its answer, if it ever comes, must not be taken for the next request's
        ex.done(TIMED_OUT)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the parser's callbacks are its ``on_*`` methods."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.dead = False
        self.complete = False  # an answer ended in the data being parsed
        self.headers_done = False
        self.framed = False  # Content-Length or Transfer-Encoding seen (else the body ends with the connection)
        self.keep = True
        self.size = 0
        self.status = 0

    # asyncio.Protocol ----------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport: create_connection's

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.fail()
            return
        if self.complete:
            self.complete = False
            ex, self.exchange = self.exchange, None
            if ex is None:  # an answer to nothing: the connection is out of step
                self.drop()
                return
            if not self.keep:
                self.drop()
            self.pool._finish(ex, self.status)
            if not self.dead:
                self.pool._ready(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.dead:
            return
        ex = self.exchange
        status = FAILED
        if ex is not None and self.headers_done and not self.framed:  # a body that ends with the connection
            status = self.parser.get_status_code()
        self.drop()
        if ex is not None:
            self.pool._finish(ex, status)

    # the parser's callbacks ----------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes | None) -> None:
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.pool.max_body:
            raise ValueError("answer body too large")

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # an interim answer (100 Continue, 103 Early Hints)
            self.headers_done = self.framed = False
            return
        self.status, self.keep, self.complete = status, self.parser.should_keep_alive(), True

    # ours ----------------------------------------------------------------------------------------------------
    def send(self, ex: _Exchange) -> None:
        assert self.transport is not None
        ex.conn = self
        self.exchange = ex
        self.size, self.status, self.headers_done, self.framed = 0, 0, False, False
        self.transport.write(ex.data)

    def fail(self) -> None:
        ex = self.exchange
        self.drop()
        if ex is not None:
            self.pool._finish(ex, FAILED)

    def drop(self) -> None:
        """Close now (abort: nothing of ours is left to send), and free the pool's slot."""
        if self.dead:
            return
        self.dead = True
        self.exchange = None
        if self.transport is not None:
            self.transport.abort()
        self.pool._lost(self)

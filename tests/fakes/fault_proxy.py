"""A misbehaving network in front of the real S3 server: faults are real, not mocks.

:class:`FaultProxy` listens on 127.0.0.1, forwards every request to the upstream S3 server
(SeaweedFS in the test session) and, on command:

- ``strip_conditional = True``: drops ``If-None-Match`` / ``If-Match`` and re-signs the request
  with the upstream credentials, as an S3 gateway that ignores conditional writes would (the
  upstream then honours nothing conditional, and the client is not told);
- ``latency = seconds``: waits before forwarding each request;
- ``outage(seconds, mode="503"|"close")``: answers ``503 ServiceUnavailable`` (or closes the
  connection without an answer) to every request for that long, as a restarting store does;
- ``fail_after(predicate, seconds, mode)``: forwards the first request ``predicate(method, path)``
  matches, then starts an outage — e.g. "503 right after ``CURRENT.json`` is written"; with
  ``lose_answer=True`` that request takes effect but its answer is lost (the connection is closed
  instead), as when the store goes down between doing a write and saying so.

It speaks just enough HTTP/1.1 for S3 clients (keep-alive, Content-Length and chunked bodies) and
records what it saw in :attr:`FaultProxy.seen`. Point ``CLEARANCE_S3_ENDPOINT_URL`` at
:attr:`FaultProxy.url`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONDITIONAL = {"if-none-match", "if-match"}
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}
_UNSIGNED = {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    answered: str  # "forwarded", "lost" (forwarded, connection closed instead of the answer), "503", "closed"


@dataclass
class _Outage:
    until: float
    mode: str


@dataclass
class FaultProxy:
    upstream: str
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = "us-east-1"
    strip_conditional: bool = False
    latency: float = 0.0
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._outage: _Outage | None = None
        self._trigger: tuple[Callable[[str, str], bool], float, str, bool] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ----------------------------------------------------------------- control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def outage(self, seconds: float, mode: str = "503") -> None:
        """Fail every request for ``seconds`` (``mode``: ``503`` or ``close``)."""
        with self._lock:
            self._outage = _Outage(time.monotonic() + seconds, mode)

    def fail_after(self, predicate: Callable[[str, str], bool], seconds: float, mode: str = "503", *,
                   lose_answer: bool = False) -> None:
        """Forward the next request ``predicate(method, path)`` matches, then fail everything for ``seconds``.

        ``lose_answer``: that request reaches the store, but the client gets no answer (the connection
        is closed), so it cannot know whether it took effect.
        """
        with self._lock:
            self._trigger = (predicate, seconds, mode, lose_answer)

    def heal(self) -> None:
        """No more faults (latency and header stripping are left as set)."""
        with self._lock:
            self._outage = None
            self._trigger = None

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        server, loop = self._server, self._loop

        async def close() -> None:
            server.close()
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(5)

    # ----------------------------------------------------------------- serving

    def _fault_now(self) -> str | None:
        with self._lock:
            if self._outage and time.monotonic() < self._outage.until:
                return self._outage.mode
            self._outage = None
            return None

    def _after(self, method: str, path: str) -> bool:
        """Start the outage a forwarded request triggers; ``True`` when its answer is to be lost."""
        with self._lock:
            if self._trigger and self._trigger[0](method, path):
                _, seconds, mode, lose_answer = self._trigger
                self._trigger = None
                self._outage = _Outage(time.monotonic() + seconds, mode)
                return lose_answer
            return False

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with httpx.Client(timeout=60) as client:  # used from a worker thread: the loop keeps serving
            try:
                while True:
                    request = await _read_request(reader, writer)
                    if request is None:
                        break
                    method, target, headers, body = request
                    if self.latency:
                        await asyncio.sleep(self.latency)
                    fault = self._fault_now()
                    path = urlsplit(target).path
                    if fault == "close":
                        self.seen.append(Seen(method, path, headers, "closed"))
                        writer.transport.abort()
                        return
                    if fault == "503":
                        self.seen.append(Seen(method, path, headers, "503"))
                        writer.write(_unavailable())
                        await writer.drain()
                        continue
                    status, reason, out_headers, out_body = await self._forward(client, method, target, headers, body)
                    if self._after(method, path):
                        self.seen.append(Seen(method, path, headers, "lost"))
                        writer.transport.abort()
                        return
                    self.seen.append(Seen(method, path, headers, "forwarded"))
                    writer.write(_response(status, reason, out_headers, out_body, method))
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

    async def _forward(self, client: httpx.Client, method: str, target: str, headers: dict[str, str],
                       body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        forward = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        if self.strip_conditional and any(k.lower() in CONDITIONAL for k in forward):
            forward = {k: v for k, v in forward.items() if k.lower() not in CONDITIONAL | _UNSIGNED}
            forward = self._signed(method, self.upstream + target, forward, body)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            None, lambda: client.request(method, self.upstream + target, headers=forward, content=body))
        dropped = _HOP | {"content-encoding"}
        if method == "HEAD":  # a HEAD answer's Content-Length is the object's: keep it
            dropped = dropped - {"content-length"}
        out = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in dropped]
        return answer.status_code, answer.reason_phrase, out, answer.content

    def _signed(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """The request re-signed by this 'gateway' with the upstream credentials."""
        headers = {k: v for k, v in headers.items() if k.lower() != "host"}
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        S3SigV4Auth(Credentials(self.access_key_id, self.secret_access_key), "s3", self.region).add_auth(request)
        return dict(request.headers.items())


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                        ) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("expect", "").lower() == "100-continue":
        headers = {k: v for k, v in headers.items() if k.lower() != "expect"}
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client sends the body only after this
        await writer.drain()
    if "chunked" in lower.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        return method, target, headers, bytes(body)
    length = int(lower.get("content-length", "0") or 0)
    return method, target, headers, (await reader.readexactly(length)) if length else b""


def _response(status: int, reason: str, headers: list[tuple[str, str]], body: bytes, method: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or 'OK'}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if method == "HEAD":
        if not any(k.lower() == "content-length" for k, _ in headers):
            lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _unavailable() -> bytes:
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
            b"<Message>fault proxy: the store is unavailable</Message></Error>")
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

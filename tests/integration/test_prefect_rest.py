"""tasks/prefect_rest.py sends the wake-up as Prefect's client would, over a real socket.

A small HTTP server on loopback answers from a script (what a Prefect server or a proxy in front of it can
answer: 503 with Retry-After, a CSRF challenge, 404, a dropped connection), so the client's retries, headers
and errors are checked on the wire; the wake-up against a real Prefect server is
tests/integration/test_approve_fast.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks.prefect_rest import API_VERSION, ClientSettings, PrefectRest, wake_run

RUN = "7d6a4c0e-2f51-4f0e-9a57-1f0c1d2e3f40"


class Script:
    """Answers per path, in order (the last one repeats); every request seen."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, str], object]]] = {}
        self.seen: list[dict] = []

    def on(self, method: str, path: str, *answers: tuple[int, dict[str, str], object]) -> None:
        self.answers[f"{method} {path}"] = list(answers)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            script.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                "body": json.loads(body) if body else None})
            queue = script.answers.get(f"{self.command} {path}") or [(404, {}, {"detail": "Not Found"})]
            status, headers, payload = queue.pop(0) if len(queue) > 1 else queue[0]
            if status == 0:  # drop the connection without an answer
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def paused() -> tuple[int, dict[str, str], object]:
    return 200, {}, {"id": RUN, "state": {"type": "PAUSED", "name": "Suspended"}}


def _api(url: str, **settings: object) -> PrefectRest:
    return PrefectRest(ClientSettings(api_url=url, **settings))  # type: ignore[arg-type]


def test_requests_carry_prefects_headers_and_the_resume_its_input(server):
    url, script = server
    script.on("GET", f"/api/flow_runs/{RUN}", paused())
    script.on("POST", f"/api/flow_runs/{RUN}/resume", (200, {}, {"status": "ACCEPT"}))
    api = _api(url, api_key="pnu_secret", custom_headers={"X-Team": "ml-platform", "User-Agent": "theirs"})
    assert api.flow_run(RUN)["state"]["type"] == "PAUSED"
    assert api.resume(RUN, {}) == {"status": "ACCEPT"}
    get, post = script.seen
    for request in (get, post):
        assert request["headers"]["X-PREFECT-API-VERSION"] == API_VERSION
        assert request["headers"]["Authorization"] == "Bearer pnu_secret"
        assert request["headers"]["X-Team"] == "ml-platform"
        assert request["headers"]["User-Agent"].startswith("clearance")  # a custom header cannot replace it
    assert post["body"] == {"run_input": {}} and post["headers"]["Content-Type"] == "application/json"


def test_basic_auth_string_wins_over_an_api_key(server):
    url, script = server
    script.on("GET", f"/api/flow_runs/{RUN}", paused())
    _api(url, api_key="pnu_secret", auth_string="admin:pass").flow_run(RUN)
    assert script.seen[0]["headers"]["Authorization"] == "Basic YWRtaW46cGFzcw=="


def test_a_503_is_retried_after_retry_after_then_reported_as_prefect_would(server):
    from prefect.exceptions import PrefectHTTPStatusError

    from tasks.outages import outage_of

    url, script = server
    script.on("GET", f"/api/flow_runs/{RUN}", (503, {"Retry-After": "0"}, {"detail": "busy"}), paused())
    assert _api(url).flow_run(RUN)["id"] == RUN
    assert len(script.seen) == 2

    script.seen.clear()
    script.on("GET", f"/api/flow_runs/{RUN}", (503, {"Retry-After": "0"}, {"detail": "busy"}))
    with pytest.raises(PrefectHTTPStatusError) as raised:
        _api(url, max_retries=2).flow_run(RUN)
    assert len(script.seen) == 3  # the first request and two retries
    assert raised.value.response.status_code == 503
    outage = outage_of(raised.value)
    assert outage is not None and "answered HTTP 503" in str(outage)


def test_a_csrf_challenge_is_answered_with_a_token_for_this_client(server):
    url, script = server
    script.on("POST", f"/api/flow_runs/{RUN}/resume", (403, {}, {"detail": "Invalid CSRF token"}),
              (200, {}, {"status": "ACCEPT"}))
    script.on("GET", "/api/csrf-token", (200, {}, {"token": "tok-1"}))
    assert _api(url).resume(RUN, {}) == {"status": "ACCEPT"}
    first, token, second = script.seen
    client = token["path"].split("client=")[1]
    assert "Prefect-Csrf-Token" not in first["headers"]
    assert second["headers"]["Prefect-Csrf-Token"] == "tok-1" and second["headers"]["Prefect-Csrf-Client"] == client


def test_an_unknown_run_is_prefects_object_not_found(server):
    from prefect.exceptions import ObjectNotFound

    url, script = server
    with pytest.raises(ObjectNotFound):
        _api(url).flow_run(RUN)


def test_a_refused_connection_fails_at_once_names_the_server_and_logs_nothing(caplog):
    import logging

    import httpx

    from tasks.outages import outage_of

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    with caplog.at_level(logging.DEBUG), pytest.raises(httpx.ConnectError) as raised:
        _api(url, max_retries=5).flow_run(RUN)  # never connected: not retried with backoff
    outage = outage_of(raised.value)
    assert outage is not None and "unreachable (connection refused)" in str(outage)
    # the command says it in one line; urllib3's own retries would each add a warning wherever logging is set up
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_connection_dropped_after_connecting_is_retried(server):
    url, script = server
    script.on("GET", f"/api/flow_runs/{RUN}", paused())
    script.on("POST", f"/api/flow_runs/{RUN}/resume", (0, {}, None), (200, {}, {"status": "ACCEPT"}))
    api = _api(url, retry_jitter_factor=0.0)
    api.flow_run(RUN)
    assert api.resume(RUN, {}) == {"status": "ACCEPT"}
    assert [r["method"] for r in script.seen] == ["GET", "POST", "POST"]


def test_wake_run_reads_the_api_from_the_environment_and_resumes(server, monkeypatch):
    url, script = server
    monkeypatch.setenv("PREFECT_API_URL", url)
    script.on("GET", f"/api/flow_runs/{RUN}", paused())
    script.on("POST", f"/api/flow_runs/{RUN}/resume", (200, {}, {"status": "ACCEPT"}))
    assert wake_run(RUN, wait_seconds=5) is True
    assert [r["method"] for r in script.seen] == ["GET", "POST"]


def test_proxies_come_from_the_environment_as_httpx_takes_them(monkeypatch):
    from tasks.prefect_rest import _proxy_for

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _proxy_for("https://prefect.example.com/api") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    assert _proxy_for("https://prefect.example.com/api") == "http://proxy.corp:3128"
    assert _proxy_for("http://prefect.example.com/api") is None  # only https goes through it
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert _proxy_for("https://prefect.example.com/api") is None

"""Waking a waiting run through Prefect's REST API without importing Prefect (or httpx).

Why: ``clearance approve`` / ``reject`` is typed by a person and should answer in well under a second;
importing Prefect's client costs more CPU than the whole rest of the command (seconds on a busy
machine). Waking a run is two requests — ``GET /flow_runs/{id}`` and ``POST /flow_runs/{id}/resume``
with ``{"run_input": {}}`` — so they are made here as Prefect's own sync client makes them
(``prefect/client/orchestration``, ``prefect/client/base.py``, Prefect 3.9): the same API-version,
authorization and custom headers, TLS choices (certifi's CA bundle unless PREFECT_API_SSL_CERT_FILE), timeout,
retries of 408/429/502/503 and of dropped connections with exponential backoff (``Retry-After`` first), a CSRF
token when the server asks for one, and the same exceptions: httpx's transport errors for a connection that
failed, :class:`prefect.exceptions.PrefectHTTPStatusError` and ``ObjectNotFound`` for error statuses (httpx and
Prefect imported only then), so :func:`tasks.outages.outage_of` names the server as before. The requests go
through urllib3 (see :class:`PrefectRest`).

Where the settings come from: with ``PREFECT_API_URL`` in the environment, every client setting is read
from the environment (Prefect's defaults otherwise); without it (a Prefect profile, ``.env`` or
``prefect.toml`` holds the URL) Prefect's settings are loaded, as is also done when the server answers
401 to credentials from the environment alone. With no API URL anywhere Prefect would start a local
ephemeral server: then its client is used.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: ``prefect.client.constants.SERVER_API_VERSION`` of the Prefect this was written against (3.9).
API_VERSION = "0.8.4"
#: Immediate retries of a connection that could not be made (Prefect's client sets ``retries=3`` on its transport).
CONNECT_RETRIES = 3
#: Statuses Prefect's client retries (``PrefectHttpxSyncClient.send``), besides PREFECT_CLIENT_RETRY_EXTRA_CODES.
RETRY_STATUSES = frozenset({408, 429, 502, 503})
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})
_CLOUD_API = "https://api.prefect.cloud/api/"


class ResumeRefused(RuntimeError):
    """Prefect would not resume the run (it answered with a non-accepting status)."""


@dataclass(frozen=True)
class ClientSettings:
    """The Prefect client settings a wake-up needs (names as Prefect's ``PREFECT_*`` settings)."""

    api_url: str | None
    api_key: str | None = None
    auth_string: str | None = None
    tls_insecure_skip_verify: bool = False
    ssl_cert_file: str | None = None
    request_timeout: float = 60.0
    max_retries: int = 5
    retry_jitter_factor: float = 0.2
    retry_extra_codes: frozenset[int] = frozenset()
    csrf_support_enabled: bool = True
    custom_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment_variables(cls) -> ClientSettings | None:
        """The settings from ``PREFECT_*`` environment variables; ``None`` when PREFECT_API_URL is not one."""
        env = os.environ
        if not env.get("PREFECT_API_URL"):
            return None
        return cls(api_url=env["PREFECT_API_URL"], api_key=env.get("PREFECT_API_KEY") or None,
                   auth_string=env.get("PREFECT_API_AUTH_STRING") or None,
                   tls_insecure_skip_verify=_flag(env.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY"), False),
                   ssl_cert_file=env.get("PREFECT_API_SSL_CERT_FILE") or env.get("SSL_CERT_FILE") or None,
                   request_timeout=float(env.get("PREFECT_API_REQUEST_TIMEOUT") or 60),
                   max_retries=int(env.get("PREFECT_CLIENT_MAX_RETRIES") or 5),
                   retry_jitter_factor=float(env.get("PREFECT_CLIENT_RETRY_JITTER_FACTOR") or 0.2),
                   retry_extra_codes=_codes(env.get("PREFECT_CLIENT_RETRY_EXTRA_CODES")),
                   csrf_support_enabled=_flag(env.get("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"), True),
                   custom_headers=json.loads(env.get("PREFECT_CLIENT_CUSTOM_HEADERS") or "{}"))

    @classmethod
    def from_prefect(cls) -> ClientSettings:
        """Prefect's own view of its settings (environment, ``.env``, ``prefect.toml``, the active profile)."""
        from prefect.settings import get_current_settings

        current = get_current_settings()
        api, client = current.api, current.client
        return cls(api_url=api.url, api_key=_secret(api.key), auth_string=_secret(api.auth_string),
                   tls_insecure_skip_verify=api.tls_insecure_skip_verify, ssl_cert_file=api.ssl_cert_file,
                   request_timeout=api.request_timeout,
                   max_retries=client.max_retries, retry_jitter_factor=client.retry_jitter_factor,
                   retry_extra_codes=_codes(client.retry_extra_codes),
                   csrf_support_enabled=client.csrf_support_enabled, custom_headers=dict(client.custom_headers))


def _secret(value: Any) -> str | None:
    """The text of a pydantic ``SecretStr`` setting, or ``None``."""
    return value.get_secret_value() if value is not None else None


def _codes(value: Any) -> frozenset[int]:
    """PREFECT_CLIENT_RETRY_EXTRA_CODES as Prefect reads it: "404,429", "429", a JSON list, or a set of ints."""
    if value is None or isinstance(value, int):
        return frozenset() if value is None else frozenset({value})
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [c for c in text.split(",") if c.strip()]
    return frozenset(int(c) for c in value)


def _flag(value: str | None, default: bool) -> bool:
    """A boolean setting as pydantic reads one from the environment."""
    return default if value is None or not value.strip() else value.strip().lower() in ("1", "true", "yes", "on")


class _Answer:
    """What the server answered: the parts the wake-up reads (urllib3's response, read whole)."""

    def __init__(self, method: str, url: str, response: Any) -> None:
        self.method, self.url = method, url
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self.content: bytes = response.data

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class PrefectRest:
    """The few Prefect API requests a wake-up makes, sent the way Prefect's sync client sends them.

    Through urllib3, which boto3 has already imported in every process that records a decision; httpx
    (Prefect's HTTP client) and its transports cost ~0.25 CPU-s to import and build a client, a fifth of
    ``clearance approve`` (bench/RESULTS.md). HTTP/1.1 only (PREFECT_API_ENABLE_HTTP2 is for Prefect's client:
    every Prefect server answers HTTP/1.1); proxies from the environment as httpx would take them."""

    def __init__(self, settings: ClientSettings) -> None:
        assert settings.api_url, "an ephemeral Prefect API has no URL: use Prefect's client"
        import urllib3

        self.settings = settings
        self._base = settings.api_url.rstrip("/")
        headers = {"X-PREFECT-API-VERSION": API_VERSION, "User-Agent": f"clearance (Prefect API {API_VERSION})",
                   "Accept": "*/*"}
        protected = {"user-agent", "prefect-csrf-token", "prefect-csrf-client"}
        headers |= {k: v for k, v in settings.custom_headers.items() if k.lower() not in protected}
        if settings.auth_string:
            import base64

            headers["Authorization"] = f"Basic {base64.b64encode(settings.auth_string.encode()).decode()}"
        elif settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self._headers = headers
        tls: dict[str, Any] = {}
        if settings.tls_insecure_skip_verify:
            tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
        elif self._base.startswith("https:"):  # the CA bundle Prefect's client trusts (certifi unless told)
            import certifi

            tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": settings.ssl_cert_file or certifi.where()}
        # Redirects only: every retry is ours (_request, _send_with_retry), as urllib3 logs each of its own retries
        # as a warning, which is a line on the command's stderr wherever logging has been set up (Prefect does).
        retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=10,
                                raise_on_redirect=False, raise_on_status=False)
        timeout = urllib3.Timeout(connect=settings.request_timeout, read=settings.request_timeout)
        proxy = _proxy_for(self._base)
        self._pool: Any = (urllib3.ProxyManager(proxy, retries=retries, timeout=timeout, **tls) if proxy
                           else urllib3.PoolManager(retries=retries, timeout=timeout, **tls))
        self._csrf = settings.csrf_support_enabled and not settings.api_url.startswith(_CLOUD_API)
        self._csrf_headers: dict[str, str] = {}
        self._connected = False

    def close(self) -> None:
        self._pool.clear()

    def flow_run(self, run_id: str) -> dict[str, Any]:
        """``GET /flow_runs/{id}``; a run Prefect does not know raises ``prefect.exceptions.ObjectNotFound``."""
        response = self._send("GET", f"/flow_runs/{run_id}", allow_404=True)
        if response.status_code == 404:
            from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

            http_error = _status_error(response)
            raise ObjectNotFound(http_exc=PrefectHTTPStatusError.from_httpx_error(http_error)) from http_error
        result: dict[str, Any] = response.json()
        return result

    def resume(self, run_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
        """``POST /flow_runs/{id}/resume``: Prefect's orchestration result (``status``, ``state``, ``details``)."""
        result: dict[str, Any] = self._send("POST", f"/flow_runs/{run_id}/resume",
                                            json_body={"run_input": run_input}).json()
        return result

    def _request(self, method: str, path: str, json_body: Any = None,
                 headers: dict[str, str] | None = None) -> _Answer:
        url = self._base + path
        body = None if json_body is None else json.dumps(json_body).encode()
        sent = self._headers | (headers or {}) | ({"Content-Type": "application/json"} if body is not None else {})
        for attempt in range(CONNECT_RETRIES + 1):
            try:
                response = self._pool.request(method, url, body=body, headers=sent, preload_content=True)
            except Exception as exc:  # noqa: BLE001 — urllib3's transport errors, said the way httpx says them
                error = _as_httpx_error(exc, method, url)
                if attempt < CONNECT_RETRIES and _never_connected(error):
                    continue
                raise error from exc
            return _Answer(method, url, response)
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises

    def _send(self, method: str, path: str, *, json_body: Any = None, allow_404: bool = False) -> _Answer:
        headers = dict(self._csrf_headers) if method != "GET" else {}
        response = self._send_with_retry(lambda: self._request(method, path, json_body, headers))
        if (method != "GET" and self._csrf and response.status_code == 403
                and "csrf" in response.text.lower() and not self._csrf_headers):
            self._csrf_headers = self._csrf_token()
            if self._csrf_headers:
                headers.update(self._csrf_headers)
                response = self._send_with_retry(lambda: self._request(method, path, json_body, headers))
        if response.is_error and not (allow_404 and response.status_code == 404):
            from prefect.exceptions import PrefectHTTPStatusError

            http_error = _status_error(response)
            raise PrefectHTTPStatusError.from_httpx_error(http_error) from http_error.__cause__
        return response

    def _csrf_token(self) -> dict[str, str]:
        """A CSRF token for this client (``GET /csrf-token``); none when the server has CSRF protection off."""
        from urllib.parse import quote

        client = str(uuid.uuid4())
        response = self._send_with_retry(lambda: self._request("GET", f"/csrf-token?client={quote(client)}"))
        if response.status_code in (404, 422):  # an older server, or CSRF protection off: send without
            return {}
        if response.is_error:
            from prefect.exceptions import PrefectHTTPStatusError

            raise PrefectHTTPStatusError.from_httpx_error(_status_error(response))
        return {"Prefect-Csrf-Token": response.json()["token"], "Prefect-Csrf-Client": client}

    def _send_with_retry(self, send: Callable[[], _Answer]) -> _Answer:
        """``send()``, retried as Prefect's client does: PREFECT_CLIENT_MAX_RETRIES more times on a retried
        status or dropped connection, waiting ``Retry-After`` or 2**attempt seconds with jitter."""
        settings = self.settings
        retry_statuses = RETRY_STATUSES | settings.retry_extra_codes
        attempt = 0
        while True:
            delay: float | None = None
            try:
                response = send()
            except Exception as exc:
                # what Prefect's client retries; a refused connection only once a request has reached the server
                if not _retried(exc, connected=self._connected):
                    raise
                attempt += 1
                if attempt > settings.max_retries:
                    raise
            else:
                self._connected = True
                if response.headers.get("Prefect-Maintenance") != "true":
                    attempt += 1
                if response.status_code not in retry_statuses or attempt > settings.max_retries:
                    return response
                delay = _retry_after(response.headers.get("Retry-After"))
            if delay is None:
                delay = 2.0 ** attempt
                delay = max(0.0, delay * (1 + random.uniform(-1, 1) * settings.retry_jitter_factor))
            time.sleep(delay)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) names for ``url``, as httpx
    would use it; ``None``: connect directly."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

    proxies = getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


#: urllib3's transport errors and the httpx errors Prefect's client (and tasks/outages.py) knows them as.
_TRANSPORT_ERRORS = {"ConnectTimeoutError": "ConnectTimeout", "NewConnectionError": "ConnectError",
                     "NameResolutionError": "ConnectError", "SSLError": "ConnectError",
                     "ReadTimeoutError": "ReadTimeout", "ProtocolError": "RemoteProtocolError",
                     "TimeoutError": "ReadTimeout"}


def _as_httpx_error(exc: Exception, method: str, url: str) -> Exception:
    """``exc`` from urllib3 as the httpx transport error Prefect's client would have raised (with its request),
    so callers and :func:`tasks.outages.outage_of` see the same thing whichever client sent the request."""
    import httpx
    import urllib3

    inner = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None else exc
    # the most specific class first: urllib3's NewConnectionError (refused) is also a ConnectTimeoutError
    target = next((_TRANSPORT_ERRORS[cls.__name__] for cls in type(inner).__mro__
                   if cls.__name__ in _TRANSPORT_ERRORS), None)
    if target is None:
        return exc  # not a transport error: as it is
    error: Exception = getattr(httpx, target)(str(inner), request=httpx.Request(method, url))
    error.__cause__ = inner
    return error


def _never_connected(exc: Exception) -> bool:
    """Whether ``exc`` (as :func:`_as_httpx_error` says it) is a connection that could not be made."""
    import httpx

    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def _retried(exc: Exception, connected: bool) -> bool:
    """Whether Prefect's client retries ``exc`` (timeouts, dropped connections; refused ones once connected)."""
    import httpx

    if isinstance(exc, httpx.ConnectError) and not isinstance(exc, httpx.ConnectTimeout):
        return connected
    return isinstance(exc, (httpx.TimeoutException, httpx.ReadError, httpx.WriteError,
                            httpx.RemoteProtocolError, httpx.LocalProtocolError))


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, IndexError):
            return None


def _status_error(response: _Answer) -> Any:
    """The ``httpx.HTTPStatusError`` Prefect's client would raise for this answer (httpx imported only now)."""
    import httpx

    request = httpx.Request(response.method, response.url)
    answer = httpx.Response(response.status_code, headers=dict(response.headers.items()), content=response.content,
                            request=request)
    try:
        answer.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError("not an error status")  # pragma: no cover - callers check is_error


class _PrefectClientApi:
    """The same two requests through Prefect's own client (ephemeral API: no URL to send them to)."""

    def __init__(self) -> None:
        from prefect import get_client

        self._client = get_client(sync_client=True).__enter__()

    def flow_run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._client.request("GET", "/flow_runs/{id}", path_params={"id": run_id}).json()
        return result

    def resume(self, run_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._client.request("POST", "/flow_runs/{id}/resume", path_params={"id": run_id},
                                                      json={"run_input": run_input}).json()
        return result

    def close(self) -> None:
        self._client.__exit__(None, None, None)


@contextmanager
def prefect_api(settings: ClientSettings | None = None) -> Iterator[PrefectRest | _PrefectClientApi]:
    """The Prefect API for a wake-up: :class:`PrefectRest` whenever an API URL is configured."""
    settings = settings or ClientSettings.from_environment_variables() or ClientSettings.from_prefect()
    api: PrefectRest | _PrefectClientApi = PrefectRest(settings) if settings.api_url else _PrefectClientApi()
    try:
        yield api
    finally:
        api.close()


def wake_run(run_id: str, wait_seconds: float = 30.0) -> bool:
    """Resume a waiting run so it re-reads its approvals record; ``True`` if it was resumed.

    The record is the truth and the flow re-reads it after every wake-up, so a wake-up
    only has to arrive once. It may come while the flow is between two waits (not yet
    paused): then we retry until it pauses or finishes, instead of losing the wake-up.
    A run that left its pause between our look and our resume (Prefect answers ABORT) was woken
    after the decision was recorded, so it reads it: that counts as woken, as with Prefect's
    ``resume_flow_run``.
    """
    try:
        return _wake(run_id, wait_seconds, None)
    except Exception as exc:  # Prefect's PrefectHTTPStatusError (an httpx.HTTPStatusError) says 401
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status != 401 or ClientSettings.from_environment_variables() is None:
            raise
        # Credentials may be in a Prefect profile or .env that the environment alone does not show.
        return _wake(run_id, wait_seconds, ClientSettings.from_prefect())


def _wake(run_id: str, wait_seconds: float, settings: ClientSettings | None) -> bool:
    deadline = time.monotonic() + wait_seconds
    with prefect_api(settings) as api:
        while True:
            state = (api.flow_run(run_id).get("state") or {}).get("type")
            if state == "PAUSED":
                result = api.resume(run_id, run_input={})
                if result.get("status") != "REJECT":
                    return True  # ACCEPT; ABORT: no longer paused (see above); WAIT: as Prefect's client
                reason = (result.get("details") or {}).get("reason")
                if (result.get("state") or {}).get("type") == "FAILED":
                    raise ResumeRefused(f"run {run_id} can no longer be resumed: its wait expired")
                # Between entering Paused and saving its input schema, a run rejects resumes with
                # "Run input schema not found": the pause is still being set up, so try again.
                if "schema not found" not in str(reason):
                    raise ResumeRefused(f"Prefect refused to resume run {run_id}: Cannot resume this run: {reason}")
            elif state in TERMINAL_STATES:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)

"""Which service an error says is down: the Prefect server or the S3 endpoint, with its URL.

Entry points turn these into one line for people ("the Prefect server at URL is unreachable …")
instead of a traceback; the approval intake uses them to say why a counted decision could not wake
its run. This is the one place that knows the exception types of httpx, botocore and Prefect's
client, so the CLI need not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from prefect.exceptions import PrefectHTTPStatusError

from tasks.store import ObjectStoreError

__all__ = ["Outage", "outage_of", "prefect_api_url", "s3_endpoint"]


@dataclass(frozen=True)
class Outage:
    """A service that failed a request: ``service`` names it with its URL, ``problem`` says what happened."""

    service: str
    problem: str
    unreachable: bool = True

    def __str__(self) -> str:
        return f"{self.service} {self.problem}"


def prefect_api_url() -> str:
    """The API URL the Prefect client uses (``PREFECT_API_URL``), or a note that none is set."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or "(PREFECT_API_URL is not set)"


def s3_endpoint() -> str:
    """The configured S3 endpoint (``CLEARANCE_S3_ENDPOINT_URL``), or AWS's in the configured region."""
    from clearance.settings import get_settings

    settings = get_settings()
    return settings.s3_endpoint_url or f"AWS S3 ({settings.s3_region})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts, each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _reason(exc: BaseException) -> str:
    """The innermost readable reason: ``connection refused``, ``timed out``…"""
    text = str(exc).strip()
    if "Connection refused" in text or isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException | ConnectTimeoutError | ReadTimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _prefect_service(exc: httpx.HTTPError | PrefectHTTPStatusError) -> str:
    api = prefect_api_url()
    try:
        url = str(exc.request.url)
    except RuntimeError:  # httpx raises when the error carries no request
        url = ""
    if url and api and not url.startswith(api.rstrip("/")):
        return f"the server at {httpx.URL(url).copy_with(path='/', query=None)}"
    return f"the Prefect server at {api}"


def outage_of(exc: BaseException) -> Outage | None:
    """The service ``exc`` (or what caused it) says failed, or ``None`` when it is no service's failure."""
    for err in _chain(exc):
        if isinstance(err, BotoConnectionError | ConnectTimeoutError | ReadTimeoutError):
            endpoint = getattr(err, "kwargs", {}).get("endpoint_url") or s3_endpoint()
            if isinstance(endpoint, str) and "://" in endpoint:
                endpoint = str(httpx.URL(endpoint).copy_with(path="/", query=None)).rstrip("/")
            causes = [_reason(e) for e in _chain(err) if e is not err]
            reason = next((c for c in causes if c in ("connection refused", "timed out")), _reason(err))
            return Outage(f"the S3 endpoint at {endpoint}", f"is unreachable ({reason})")
        if isinstance(err, httpx.TransportError):
            causes = [_reason(e) for e in _chain(err)]
            reason = next((c for c in causes if c in ("connection refused", "timed out")), _reason(err))
            return Outage(_prefect_service(err), f"is unreachable ({reason})")
        if isinstance(err, PrefectHTTPStatusError) and err.response.status_code >= 500:
            return Outage(_prefect_service(err), f"answered HTTP {err.response.status_code}", unreachable=False)
    for err in _chain(exc):
        if isinstance(err, ObjectStoreError):  # the server answered, with a refusal or an error
            return Outage(f"the S3 endpoint at {s3_endpoint()}", f"failed the request: {err}", unreachable=False)
    return None

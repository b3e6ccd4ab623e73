"""Talking to Jira through the ``jira`` library: connection, retries with backoff, clear errors.

Two kinds of failure, because they need different handling:

- :class:`JiraUnavailable` — 5xx, 429, timeouts, refused connections: Jira will probably be back;
  callers queue what they could not write and try again later.
- :class:`JiraConfigError` — 400/401/403/404, a missing transition: no retry fixes it; the
  message says what to change.

Messages name the operation and Jira's own error text, never headers or credentials (the
library's ``JIRAError.__str__`` prints request headers, so it is never used here).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError

from clearance.settings.jira import JiraSettings

log = logging.getLogger("clearance.jira")
T = TypeVar("T")

_HINTS = {
    401: "the credentials were refused: check CLEARANCE_JIRA_EMAIL/API_TOKEN, PAT or USERNAME/PASSWORD",
    403: "the Jira account lacks a permission in this project (browse, create, comment, transition)",
    404: "not found: check CLEARANCE_JIRA_URL and CLEARANCE_JIRA_PROJECT",
}


class JiraChannelError(RuntimeError):
    """Jira could not be updated; the message says why (never a secret)."""


class JiraUnavailable(JiraChannelError):
    """Jira is down, slow or rate limiting: what was not written stays queued."""


class JiraConfigError(JiraChannelError):
    """Jira answered, but no retry will help: settings or workflow must change."""


def _jira_messages(error: JIRAError) -> str:
    response = getattr(error, "response", None)
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    parts = list(body.get("errorMessages") or []) if isinstance(body, dict) else []
    if isinstance(body, dict) and isinstance(body.get("errors"), dict):
        parts += [f"{k}: {v}" for k, v in body["errors"].items()]
    if not parts and error.text and "\n" not in str(error.text):
        parts = [str(error.text)[:300]]
    return "; ".join(str(p) for p in parts)


def _retry_after(error: JIRAError) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def call(settings: JiraSettings, what: str, fn: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()`` with retries on outages; raises :class:`JiraUnavailable` or :class:`JiraConfigError`."""
    problem = ""
    for attempt in range(settings.max_retries + 1):
        delay = settings.backoff_seconds * (2 ** attempt) * random.uniform(0.8, 1.2)
        try:
            return fn()
        except JIRAError as exc:
            status = exc.status_code or 0
            detail = _jira_messages(exc)
            if status == 429 or status >= 500:
                problem = f"HTTP {status}" + (f" ({detail})" if detail else "")
                wait = _retry_after(exc) if status == 429 else None
                if wait is not None:
                    if wait > settings.max_retry_after_seconds:
                        raise JiraUnavailable(f"Jira {what}: rate limited for {wait:g}s (over the "
                                              f"{settings.max_retry_after_seconds:g}s we wait)") from None
                    delay = wait + random.uniform(0, 0.05)
            elif status == 0:
                problem = detail or "no HTTP status"
            else:
                hint = _HINTS.get(status, "")
                raise JiraConfigError(f"Jira {what} failed: HTTP {status}" + (f": {detail}" if detail else "")
                                      + (f" — {hint}" if hint else "")) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            problem = type(exc).__name__
        if attempt < settings.max_retries:
            log.info("Jira %s: %s; retry %d/%d in %.2fs", what, problem, attempt + 1, settings.max_retries, delay)
            sleep(delay)
    raise JiraUnavailable(f"Jira {what}: {problem} (gave up after {settings.max_retries + 1} attempts)")


def connect(settings: JiraSettings) -> JIRA:
    """A client on ``settings.url`` with the configured auth; reads ``serverInfo`` (deployment type).

    The library's own retries are off (``max_retries=0``): :func:`call` retries with bounded backoff.
    """
    if not settings.url:
        raise JiraConfigError("CLEARANCE_JIRA_URL is not set")
    kwargs: dict[str, Any] = {"server": settings.url, "timeout": settings.timeout_seconds, "max_retries": 0,
                              "options": {"check_update": False, "rest_api_version": "2"}}
    kind = settings.auth_kind
    # Each kind implies its fields are set (JiraSettings.auth_kind); the `is not None` tests only narrow types.
    if kind == "api-token" and settings.api_token is not None:
        kwargs["basic_auth"] = (settings.email, settings.api_token.get_secret_value())
    elif kind == "pat" and settings.pat is not None:
        kwargs["token_auth"] = settings.pat.get_secret_value()
    elif kind == "basic" and settings.password is not None:
        kwargs["basic_auth"] = (settings.username, settings.password.get_secret_value())
    client = call(settings, "serverInfo", lambda: JIRA(**kwargs))
    if settings.deployment != "auto":
        client.deploymentType = "Cloud" if settings.deployment == "cloud" else "Server"
    return client


def is_cloud(client: JIRA) -> bool:
    """Whether ``serverInfo.deploymentType`` said Cloud (else Server / Data Center)."""
    return client.deploymentType == "Cloud"


def search(settings: JiraSettings, client: JIRA, jql: str, fields: str = "summary,status,labels",
           expand: str | None = None, max_results: int = 50) -> list[Any]:
    """JQL search on the endpoint the deployment has: ``search/jql`` on Cloud, ``search`` on Server/DC."""
    if is_cloud(client):
        found = call(settings, "search", lambda: client.enhanced_search_issues(
            jql, maxResults=max_results, fields=fields, expand=expand))
    else:
        found = call(settings, "search", lambda: client.search_issues(
            jql, maxResults=max_results, fields=fields, expand=expand))
    return list(found)


def transition_to(settings: JiraSettings, client: JIRA, issue_key: str, name: str, state: str,
                  done_if_status: tuple[str, ...] = (), setting: str | None = None) -> str | None:
    """Apply the transition called ``name``; returns the new status, ``None`` if the ticket is already there.

    A transition that the issue's workflow does not offer raises :class:`JiraConfigError`
    naming the transitions it does offer and the ``setting`` to change (unless the ticket already
    has a status in ``done_if_status``, e.g. a person moved it to "Approved" themselves).
    """
    issue = call(settings, "get issue", lambda: client.issue(issue_key, fields="status"))
    current = issue.fields.status.name
    available = call(settings, "transitions", lambda: client.transitions(issue_key))
    match = next((t for t in available if t["name"].lower() == name.lower()), None)
    if match is None:
        if current.lower() in {s.lower() for s in done_if_status}:
            return None
        names = ", ".join(f"'{t['name']}'" for t in available) or "none"
        raise JiraConfigError(
            f"Jira transition '{name}' (pipeline state {state}) is not available on {issue_key} "
            f"(status '{current}'); available transitions: {names}. "
            f"Set {setting or f'CLEARANCE_JIRA_TRANSITIONS to map {state}'} to one of them.")
    target = (match.get("to") or {}).get("name")
    if target and target.lower() == current.lower():
        return None
    call(settings, f"transition {issue_key} '{name}'", lambda: client.transition_issue(issue_key, match["id"]))
    return target

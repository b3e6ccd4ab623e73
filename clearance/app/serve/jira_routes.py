"""``POST /jira/webhook``: Jira Cloud admin webhooks, HMAC signature checked before anything else.

Order of work: read the raw body (bounded) → check ``X-Hub-Signature: sha256=<hex HMAC-SHA256
of the raw body>`` with ``CLEARANCE_JIRA_WEBHOOK_SECRET`` (missing or wrong → 401, nothing
parsed or counted) → parse JSON and check the shape of the fields read (wrong → 400 with the
field) → refuse a body whose ``timestamp`` (ms since the epoch) is further from now than
``CLEARANCE_JIRA_REPLAY_WINDOW_SECONDS`` (401: a replayed delivery) → take the status changes in
``changelog.items`` → each goes through :func:`tasks.jira_approvals.process_status_change` (the
shared approval intake, which counts only changes on the run's own ticket, made after the request
opened, by a pinned account). Server/DC webhooks are unsigned: use the poller there
(``python -m clearance.app.jira_poller``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from clearance.app.serve.bodies import read_bounded
from clearance.settings.jira import JiraSettings

log = logging.getLogger("clearance.jira.http")

MAX_BODY_BYTES = 2_000_000


def signature_for(secret: str, body: bytes) -> str:
    """The header value Jira sends: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> str | None:
    """``None`` when the signature is right, else why not (for the log; the caller answers 401)."""
    if not header:
        return "missing X-Hub-Signature"
    if not header.startswith("sha256="):
        return "X-Hub-Signature is not sha256="
    # Bytes, not str: compare_digest refuses non-ASCII str (a header may carry any latin-1 character).
    if not hmac.compare_digest(signature_for(secret, body).encode(), header.strip().encode("utf-8", "replace")):
        return "X-Hub-Signature does not match the body"
    return None


# --------------------------------------------------------------------------- the fields read from a delivery


class _Fields(BaseModel):
    """Only the fields clearance reads, with their types; every other field is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class WebhookUser(_Fields):
    accountId: StrictStr | None = None
    name: StrictStr | None = None
    key: StrictStr | None = None
    emailAddress: StrictStr | None = None
    displayName: StrictStr | None = None


class WebhookItem(_Fields):
    field: StrictStr | None = None
    fieldId: StrictStr | None = None
    fromString: StrictStr | None = None
    toString: StrictStr | None = None


class WebhookChangelog(_Fields):
    id: StrictStr | StrictInt | None = None
    items: list[WebhookItem] | None = None


class WebhookIssueFields(_Fields):
    labels: list[StrictStr] | None = None


class WebhookIssue(_Fields):
    id: StrictStr | StrictInt | None = None
    key: StrictStr | None = None
    issue_fields: WebhookIssueFields | None = Field(None, alias="fields")


class WebhookBody(_Fields):
    """A ``jira:issue_updated`` delivery (other events parse too and carry no status change)."""

    timestamp: StrictInt = Field(description="When Jira sent it, ms since the epoch.")
    webhookEvent: StrictStr | None = None
    user: WebhookUser | None = None
    issue: WebhookIssue | None = None
    changelog: WebhookChangelog | None = None


def parse_body(body: bytes) -> tuple[WebhookBody | None, str | None]:
    """The delivery, or why it cannot be read (a short reason that never echoes the body)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "body is not JSON"
    if not isinstance(payload, dict):
        return None, "body is not a JSON object"
    try:
        return WebhookBody.model_validate(payload), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return None, f"{where}: {first['msg']}"[:200]


def status_changes(delivery: WebhookBody) -> list[Any]:
    """The status changes of an ``issue_updated`` delivery, as :class:`StatusChange` s."""
    from tasks.jira_approvals import StatusChange

    issue = delivery.issue or WebhookIssue()
    changelog = delivery.changelog or WebhookChangelog()
    labels = list((issue.issue_fields.labels if issue.issue_fields else None) or [])
    author = delivery.user.model_dump(exclude_none=True) if delivery.user else {}
    at = datetime.fromtimestamp(delivery.timestamp / 1000, UTC)
    changes = []
    for item in changelog.items or []:
        if (item.fieldId or item.field) != "status":
            continue
        changes.append(StatusChange(
            issue_key=issue.key or "", issue_id="" if issue.id is None else str(issue.id), labels=labels,
            author=author, history_id="" if changelog.id is None else str(changelog.id),
            from_status=item.fromString or "", to_status=item.toString or "", source="webhook", at=at))
    return changes


class WebhookEndpoint:
    """The ASGI endpoint; settings are read when the app is built."""

    def __init__(self, settings: JiraSettings | None = None, store=None, principals=None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or JiraSettings()
        self._store = store
        self._principals = principals
        self.clock = clock

    def _context(self):
        from tasks.wiring import config_set, object_store

        store = self._store or object_store()
        principals = self._principals or config_set().principals
        return store, principals

    async def handle(self, request: Request) -> Response:
        secret = self.settings.webhook_secret
        if secret is None:
            log.error("jira webhook refused: CLEARANCE_JIRA_WEBHOOK_SECRET is not set")
            return JSONResponse({"error": "jira webhook secret not configured"}, status_code=503)
        body = await read_bounded(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": "request too large"}, status_code=413)
        client = request.client.host if request.client else "?"
        problem = verify_signature(secret.get_secret_value(), body, request.headers.get("x-hub-signature"))
        if problem is not None:
            log.warning("jira webhook refused (401) from %s: %s", client, problem)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        delivery, problem = parse_body(body)
        if delivery is None:
            log.warning("signed jira webhook refused (400) from %s: %s", client, problem)
            return JSONResponse({"error": f"bad payload: {problem}"}, status_code=400)
        window = self.settings.replay_window_seconds
        age_ms = int(self.clock() * 1000) - delivery.timestamp  # integers: any timestamp compares safely
        if abs(age_ms) > window * 1000:
            log.warning("signed jira webhook refused (401) from %s: timestamp %d is %s the %d s replay window",
                        client, delivery.timestamp, "before" if age_ms > 0 else "after", window)
            return JSONResponse({"error": f"timestamp outside the {window} s replay window"}, status_code=401)
        changes = status_changes(delivery)
        if not changes:
            return JSONResponse({"results": []})
        results = await run_in_threadpool(self._process, changes)
        return JSONResponse({"results": results})

    def _process(self, changes: list[Any]) -> list[str]:
        from tasks.jira_approvals import process_status_change

        store, principals = self._context()
        results = []
        for change in changes:
            try:
                results.append(process_status_change(self.settings, store, principals, change))
            except Exception as exc:
                log.exception("jira webhook: could not process %s", change.issue_key)
                results.append(f"error: {type(exc).__name__}")
        return results


def routes(settings: JiraSettings | None = None, store=None, principals=None,
           clock: Callable[[], float] = time.time) -> list[BaseRoute]:
    """The Jira routes of ``clearance serve``."""
    endpoint = WebhookEndpoint(settings, store, principals, clock)
    return [Route("/jira/webhook", endpoint.handle, methods=["POST"])]

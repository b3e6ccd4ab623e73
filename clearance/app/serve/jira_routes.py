"""``POST /jira/webhook``: Jira Cloud admin webhooks, HMAC signature checked before anything else.

Order of work: read the raw body (bounded) → check ``X-Hub-Signature: sha256=<hex HMAC-SHA256
of the raw body>`` with ``CLEARANCE_JIRA_WEBHOOK_SECRET`` (missing or wrong → 401, nothing
parsed or counted) → parse JSON → take the status changes in ``changelog.items`` → each goes
through :func:`tasks.jira_approvals.process_status_change` (the shared approval intake).
Server/DC webhooks are unsigned: use the poller there (``python -m clearance.app.jira_poller``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

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
    if not hmac.compare_digest(signature_for(secret, body), header.strip()):
        return "X-Hub-Signature does not match the body"
    return None


def status_changes(payload: dict[str, Any]) -> list[Any]:
    """The status changes of an ``issue_updated`` payload, as :class:`StatusChange` s."""
    from tasks.jira_approvals import StatusChange

    issue = payload.get("issue") or {}
    changelog = payload.get("changelog") or {}
    fields = issue.get("fields") or {}
    changes = []
    for item in changelog.get("items") or []:
        if (item.get("fieldId") or item.get("field")) != "status":
            continue
        changes.append(StatusChange(
            issue_key=str(issue.get("key", "")), issue_id=str(issue.get("id", "")),
            labels=list(fields.get("labels") or []), author=payload.get("user") or {},
            history_id=str(changelog.get("id", "")), from_status=str(item.get("fromString") or ""),
            to_status=str(item.get("toString") or ""), source="webhook"))
    return changes


class WebhookEndpoint:
    """The ASGI endpoint; settings are read when the app is built."""

    def __init__(self, settings: JiraSettings | None = None, store=None, principals=None) -> None:
        self.settings = settings or JiraSettings()
        self._store = store
        self._principals = principals

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
        problem = verify_signature(secret.get_secret_value(), body, request.headers.get("x-hub-signature"))
        if problem is not None:
            client = request.client.host if request.client else "?"
            log.warning("jira webhook refused (401) from %s: %s", client, problem)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            payload = json.loads(bytes(body))
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return JSONResponse({"error": "bad payload"}, status_code=400)
        changes = status_changes(payload)
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


def routes(settings: JiraSettings | None = None, store=None, principals=None) -> list[BaseRoute]:
    """The Jira routes of ``clearance serve``."""
    endpoint = WebhookEndpoint(settings, store, principals)
    return [Route("/jira/webhook", endpoint.handle, methods=["POST"])]

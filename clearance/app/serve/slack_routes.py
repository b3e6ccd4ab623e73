"""``POST /slack/interactions``: Slack's interactivity requests, signature checked before anything else.

Order of work for each request: read the raw body (bounded) → check the v0 signature and
the 5-minute window → only then parse ``payload=`` and check the types of the fields clearance
reads (400 naming the field) → answer at once (Slack wants < 3 s) → do the decision in a
background task after the response has gone out.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import parse_qs

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from clearance.app.serve.bodies import read_bounded
from clearance.app.serve.slack_interactions import SlackInteractions, payload_problem, verify_signature
from clearance.settings import SlackSettings
from tasks.secret_blocks import load_slack_settings

log = logging.getLogger("clearance.slack.http")

MAX_BODY_BYTES = 1_000_000


class InteractionsEndpoint:
    """The ASGI endpoint; settings are read once when the app is built."""

    def __init__(self, settings: SlackSettings | None = None, interactions: SlackInteractions | None = None,
                 clock=time.time) -> None:
        self.settings = settings or load_slack_settings()
        self.interactions = interactions or SlackInteractions(self.settings)
        self.clock = clock
        import tasks.approval_intake  # noqa: F401 — imports Prefect now, not on the first click

    async def handle(self, request: Request) -> Response:
        secret = self.settings.signing_secret
        if secret is None:
            log.error("slack interaction refused: CLEARANCE_SLACK_SIGNING_SECRET is not set")
            return JSONResponse({"error": "slack signing secret not configured"}, status_code=503)
        body = await read_bounded(request, MAX_BODY_BYTES)
        if body is None:
            log.warning("slack interaction refused: body over %d bytes", MAX_BODY_BYTES)
            return JSONResponse({"error": "request too large"}, status_code=413)
        problem = verify_signature(secret.get_secret_value(), body,
                                   request.headers.get("x-slack-request-timestamp"),
                                   request.headers.get("x-slack-signature"), self.clock(),
                                   self.settings.signature_max_age_seconds)
        if problem is not None:
            client = request.client.host if request.client else "?"
            log.warning("slack interaction refused (401) from %s: %s", client, problem)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            payload = json.loads(parse_qs(bytes(body).decode("utf-8"), strict_parsing=True)["payload"][0])
        except (KeyError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            log.warning("signed slack request without a usable payload: %s", type(exc).__name__)
            return JSONResponse({"error": "bad payload: no payload= form field holding JSON"}, status_code=400)
        problem = payload_problem(payload)
        if problem is not None:
            log.warning("signed slack request refused (400): %s", problem)
            return JSONResponse({"error": f"bad payload: {problem}"}, status_code=400)
        answer, work = self.interactions.ack(payload)
        background = BackgroundTask(_run, work) if work is not None else None
        if answer is None:
            return Response(status_code=200, background=background)
        return JSONResponse(answer, background=background)


def _run(work) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 — a failed decision must not kill the server; it is logged
        log.exception("slack interaction failed after acknowledgement")


def routes(settings: SlackSettings | None = None, interactions: SlackInteractions | None = None) -> list[BaseRoute]:
    """The Slack routes of ``clearance serve``."""
    endpoint = InteractionsEndpoint(settings, interactions)
    return [Route("/slack/interactions", endpoint.handle, methods=["POST"])]

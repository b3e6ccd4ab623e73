"""The ASGI app of ``clearance serve``: health plus the routes each channel module contributes.

A channel module (``clearance.app.serve.slack_routes``, ``clearance.app.serve.jira_routes``) exposes
``routes() -> list[starlette.routing.BaseRoute]``; a missing module simply adds nothing.
"""

from __future__ import annotations

import importlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

CHANNEL_ROUTE_MODULES = ("clearance.app.serve.slack_routes", "clearance.app.serve.jira_routes")


async def healthz(_: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


def channel_routes() -> list[BaseRoute]:
    """Routes of every channel module that is present."""
    routes: list[BaseRoute] = []
    for name in CHANNEL_ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        routes.extend(module.routes())
    return routes


def build_app() -> Starlette:
    """The app served by ``clearance serve``."""
    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *channel_routes()])

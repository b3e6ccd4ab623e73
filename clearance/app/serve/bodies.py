"""Reading a request body with a size bound, before anything else looks at it (verify first, parse after)."""

from __future__ import annotations

from starlette.requests import Request


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The raw body, or ``None`` as soon as it grows past ``limit`` bytes (the caller answers 413)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)

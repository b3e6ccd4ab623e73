"""The one clock: timezone-aware UTC, so naive datetimes never enter evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def aware_now(value: Any = None) -> datetime:
    """``value`` (a datetime or ISO 8601 text, e.g. a gate's ``extra["now"]``) or the current time,
    always timezone-aware (a naive value is taken as UTC)."""
    if isinstance(value, datetime):
        now = value
    elif isinstance(value, str) and value:
        now = datetime.fromisoformat(value)
    else:
        now = utcnow()
    return now if now.tzinfo else now.replace(tzinfo=UTC)

"""The one clock: timezone-aware UTC, so naive datetimes never enter evidence."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)

"""Ordering model versions: PEP 440 where both parse (so 1.0.10 comes after 1.0.9), else no order at all."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as ``a`` is lower than, equal to or higher than ``b``; ``None`` when either is not a PEP 440
    version (names like ``2024-q3-retrain`` have no order clearance could trust)."""
    try:
        left, right = Version(a), Version(b)
    except InvalidVersion:
        return None
    return (left > right) - (left < right)

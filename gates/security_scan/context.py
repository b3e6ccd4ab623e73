"""One evaluation of ``security_scan``: its inputs, its config and what the check modules accumulate.

Every check module (``gates/security_scan/checks/``) gets the same :class:`Scan`: it reads the
inputs it needs from ``GateInputs.extra`` and appends its rows to the evidence :attr:`Scan.table`,
its digests to :attr:`Scan.digests` and its counts to :attr:`Scan.metrics`; it returns its checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clearance.core.clock import utcnow
from gates.base import GateInputs
from gates.security_scan.config import SecurityScanConfig


def _table() -> dict[str, Any]:
    return {"files": [], "callables": [], "requirements": [], "requirement_issues": [], "advisories": [],
            "advisory_db": None, "secrets": [], "not_scanned": [], "storage": []}


@dataclass
class Scan:
    """The state of one evaluation, shared by the check modules."""

    inputs: GateInputs
    config: SecurityScanConfig
    now: datetime = field(default_factory=utcnow)
    table: dict[str, Any] = field(default_factory=_table)
    digests: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def extra(self) -> dict[str, Any]:
        return self.inputs.extra

    @property
    def preflight(self) -> bool:
        """A pre-flight (``clearance gate run``): local files only, no buckets."""
        return bool(self.extra.get("preflight"))

    def pinned_artifacts(self) -> list[dict[str, Any]]:
        """The manifest's artifact entries of the version (key, sha256, size, format)."""
        version = (self.inputs.manifest.get("versions") or {}).get(self.inputs.version) or {}
        return list(version.get("artifacts") or [])

    def path(self, name: str) -> Path | None:
        """A local path given in ``extra[name]``, if any."""
        value = self.extra.get(name)
        return Path(value) if value else None

    def count(self, name: str, amount: float = 1) -> None:
        self.metrics[name] = self.metrics.get(name, 0.0) + amount



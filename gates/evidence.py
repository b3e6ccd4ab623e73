"""What every gate's evidence files share: where they go, and one JSON document as an :class:`EvidenceFile`.

A gate writes its evidence into ``GateInputs.extra["evidence_dir"]`` (the flow's per-run folder, which
the flow uploads next to the result) or, off the flow, into a fresh temporary folder. A JSON document is
written as canonical JSON, so its digest is the same wherever it is recomputed.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from clearance.core.digests import canonical_json
from gates.base import CheckResult, EvidenceFile, GateInputs, Status


def evidence_directory(inputs: GateInputs, gate_id: str) -> Path:
    """The folder this gate's evidence files go to (created): the flow's, else a new temporary one."""
    directory = Path(inputs.extra.get("evidence_dir") or tempfile.mkdtemp(prefix=f"{gate_id}-"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_json(directory: Path, name: str, document: Any) -> EvidenceFile:
    """``document`` as canonical JSON in ``directory / name``; its file (name, SHA-256, media type, file URI)."""
    path = directory / name
    body = canonical_json(document)
    path.write_bytes(body)
    return EvidenceFile(name=name, sha256=hashlib.sha256(body).hexdigest(), media_type="application/json",
                        uri=path.resolve().as_uri())


def status_counts(checks: Iterable[CheckResult]) -> dict[str, int]:
    """How many checks ended in each status (statuses no check has are left out)."""
    counts: dict[str, int] = {}
    for check in checks:
        counts[check.status.value] = counts.get(check.status.value, 0) + 1
    return {status.value: counts[status.value] for status in Status if status.value in counts}


def run_concerns(concerns: Iterable[tuple[str, Callable[[list[CheckResult]], list[CheckResult]]]],
                 explain: Callable[[Exception], str] = lambda exc: f"{type(exc).__name__}: {exc}",
                 ) -> list[CheckResult]:
    """The checks of each concern in order (each sees a copy of the checks so far). A concern that raised becomes
    one ``error`` check with its id, "could not be checked" and ``explain(exc)``; the concerns after it still run."""
    checks: list[CheckResult] = []
    for concern, run in concerns:
        try:
            checks += run(list(checks))
        except Exception as exc:  # noqa: BLE001 — one concern that crashed is an error; the others still report
            checks.append(CheckResult(id=concern, status=Status.ERROR,
                                      message=f"{concern} could not be checked: {explain(exc)}"))
    return checks


def checks_summary(checks: list[CheckResult], now: Any) -> dict[str, Any]:
    """The summary line of a concern gate's evidence table: how many checks, per status, and the time judged at."""
    return {"checks": len(checks), **status_counts(checks), "now": now.isoformat()}

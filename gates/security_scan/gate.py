"""The ``security_scan`` gate as the registry sees it: id, version, config model and ``evaluate``.

One evaluation runs the check modules of :mod:`gates.security_scan.checks` in order on one
:class:`~gates.security_scan.context.Scan`, writes the evidence table and builds the result.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from pydantic import BaseModel

from clearance.core.clock import aware_now
from gates.base import CheckResult, GateInputs, GateResult, Status, register_gate
from gates.evidence import checks_summary, evidence_directory, run_concerns
from gates.security_scan.checks import MODULES
from gates.security_scan.config import SecurityScanConfig
from gates.security_scan.context import Scan
from gates.security_scan.evidence import write_table


@register_gate
class SecurityScanGate:
    """Model files judged as bytes (pickle callables, formats, containers), pinned requirements against
    advisories, secrets in the bundle, and the storage posture of the buckets."""

    id: ClassVar[str] = "security_scan"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = SecurityScanConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        assert isinstance(config, SecurityScanConfig)
        scan = Scan(inputs=inputs, config=config, now=aware_now(inputs.extra.get("now")))
        # Each module's concern is named by its first check id; a module judges the scan, not earlier checks.
        checks = run_concerns([(next(iter(module.CHECKS)), partial(_run_module, module, scan)) for module in MODULES])
        evidence = [write_table(evidence_directory(inputs, self.id), scan.table, checks_summary(checks, scan.now))]
        return GateResult.from_checks(self.id, self.version, checks, metrics=scan.metrics, evidence=evidence,
                                      input_digests=scan.digests, message=_message(scan, checks))


def _run_module(module: Any, scan: Scan, _so_far: list[CheckResult]) -> list[CheckResult]:
    return list(module.run(scan))


def _message(scan: Scan, checks: list[CheckResult]) -> str:
    """One line: what was scanned and what was found (concerns not checked are named as such)."""
    m = {name: int(value) for name, value in scan.metrics.items()}
    parts = []
    if "files" in m:
        parts.append(f"{m['files']} file(s), {m.get('callables', 0)} distinct callable(s) "
                     f"({m.get('callables.denied', 0)} denied, {m.get('callables.unknown', 0)} unknown)")
    if "requirements" in m:
        hits = f", {m['advisories']} advisory hit(s)" if "advisories" in m else ""
        parts.append(f"{m.get('requirements.pinned', 0)} of {m['requirements']} requirement(s) pinned{hits}")
    if "text_files" in m:
        parts.append(f"{m.get('secrets', 0)} secret(s) in {m['text_files']} text file(s)")
    if "storage.buckets" in m:
        parts.append(f"{m['storage.buckets']} bucket(s), {m.get('storage.unknown', 0)} aspect(s) unknown")
    skipped = [c.id for c in checks if c.status is Status.SKIPPED and not c.id.startswith("not_scanned:")]
    if skipped:
        parts.append(f"not checked: {', '.join(skipped)}")
    return "; ".join(parts) or "nothing to scan"

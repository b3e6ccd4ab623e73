"""The readiness scorecard: the factors that decide whether a model survives past the proof of concept.

One check per factor, ``readiness:<factor>``, in the order of
:data:`gates.compliance_review.config.ReadinessFactor`, each with its evidence or "missing":

==================  ==========================================================================
executive_sponsor   the manifest's ``sponsor``
use_case_and_kpi    an intended use (manifest ``intended_use`` or the model card's section) and a
                    complete KPI (the ``kpi*`` checks all pass)
data_readiness      the ``data_check`` gate that ran earlier in the promotion
mlops_foundation    lineage (the ``lineage*`` checks), ``operations.ci`` and ``operations.monitoring``
security            the ``security_scan`` gate that ran earlier in the promotion
compliance          this gate's other checks: none fail or error → pass (warnings named)
integration_plan    the manifest's ``serving_endpoint`` and ``operations.consumers``
change_management   ``operations.runbook`` and ``operations.on_call``
cost_model          the ``cost`` gate that ran earlier in the promotion, with its cost per 1,000
                    predictions and per month
==================  ==========================================================================

Each piece of evidence is ``pass`` (found), ``warn`` / ``fail`` (the gate or checks it reflects
warned / failed or errored) or ``missing``. A factor takes its worst piece (fail, then missing, then
warn, then pass). A factor whose evidence failed fails; a missing factor gets ``readiness.missing``
(warn by default), ``fail`` when the factor is in ``readiness.required``; a factor whose evidence
exists passes, also when that evidence warned — the scorecard asks whether the evidence is there, and
a warning is shown where it was raised (its gate or check) and named in the factor's evidence text
(``security_scan warn``), so it is neither hidden nor counted twice. ``message`` is ``"<Title>: <evidence>"`` or
``"<Title>: missing — <what would count>"``; ``observed`` the short evidence text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gates.base import CheckResult, Status
from gates.compliance_review.business_case import check_kpi
from gates.compliance_review.config import ReadinessConfig, ReadinessFactor
from gates.compliance_review.lineage import check_lineage
from gates.compliance_review.model_card import ModelCard, section_written
from gates.compliance_review.regulatory import gate_status, present

FACTORS: tuple[str, ...] = tuple(ReadinessFactor.__args__)  # type: ignore[attr-defined]

TITLES: dict[str, str] = {
    "executive_sponsor": "Executive sponsor", "use_case_and_kpi": "Use case and KPI",
    "data_readiness": "Data readiness", "mlops_foundation": "MLOps foundation", "security": "Security",
    "compliance": "Compliance", "integration_plan": "Integration plan", "change_management": "Change management",
    "cost_model": "Cost model",
}
assert set(TITLES) == set(FACTORS)

MAX_ECHO_CHARS = 80
MISSING = "missing"

_RANK = {"fail": 0, MISSING: 1, "warn": 2, "pass": 3}


def _echo(value: Any) -> str:
    text = value if isinstance(value, str) else ", ".join(str(v) for v in value) if isinstance(value, list) \
        else str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "…"


@dataclass(frozen=True)
class Piece:
    """One piece of evidence of a factor: its state, and what was found or what would count."""

    state: str  # pass | warn | fail | missing
    text: str


@dataclass
class Facts:
    """What the scorecard reads: the manifest, the version, the card, this gate's checks, earlier gates."""

    manifest: Mapping[str, Any]
    version: str
    card: ModelCard | None
    checks: list[CheckResult]
    earlier_gates: Mapping[str, Any] | None
    today: date
    min_words: int = 3

    def get(self, path: str) -> Any:
        value: Any = self.manifest
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        return value


def _value(facts: Facts, path: str, what: str) -> Piece:
    value = facts.get(path)
    if present(value):
        return Piece("pass", f"{path.split('.')[-1]} {_echo(value)}")
    return Piece(MISSING, what)


def _gate(facts: Facts, gate_id: str, what: str) -> Piece:
    if facts.earlier_gates is None:
        return Piece(MISSING, f"{what} (no earlier gates in a pre-flight)")
    entry = facts.earlier_gates.get(gate_id)
    status = gate_status(entry)
    if status is None:
        return Piece(MISSING, f"{what} ({gate_id} did not run in this promotion)")
    state = {"pass": "pass", "warn": "warn", "waived": "warn", "fail": "fail", "error": "fail"}.get(status, MISSING)
    if state == MISSING:
        return Piece(MISSING, f"{what} ({gate_id} {status})")
    return Piece(state, f"{gate_id} {status}")


def _checks(facts: Facts, prefix: str, fallback: Callable[[], list[CheckResult]], label: str) -> Piece:
    checks = [c for c in facts.checks if c.id == prefix or c.id.startswith(prefix + ":")]
    judged = [c for c in checks if c.status is not Status.SKIPPED]
    if not judged:  # the concern did not run (disabled): judge the manifest directly
        judged = [c for c in fallback() if c.status is not Status.SKIPPED]
    if not judged:
        return Piece(MISSING, f"{label} checks")
    bad = [c.id for c in judged if c.status in (Status.FAIL, Status.ERROR)]
    if bad:
        return Piece("fail", f"{label}: {len(bad)} of {len(judged)} check(s) failed")
    warned = sum(1 for c in judged if c.status is Status.WARN)
    if warned:
        return Piece("warn", f"{label}: {warned} of {len(judged)} check(s) warn")
    return Piece("pass", f"{label} complete")


def _executive_sponsor(facts: Facts) -> list[Piece]:
    return [_value(facts, "sponsor", "a sponsor (name and title) in the manifest")]


def _use_case_and_kpi(facts: Facts) -> list[Piece]:
    intended = facts.get("intended_use")
    if present(intended):
        use = Piece("pass", f"intended use {_echo(intended)}")
    elif facts.card is not None and section_written(facts.card, "intended_use", min_words=facts.min_words):
        use = Piece("pass", "intended use in the model card")
    else:
        use = Piece(MISSING, "an intended use (manifest intended_use or the model card's)")
    kpi = _checks(facts, "kpi", lambda: check_kpi(dict(facts.manifest), today=facts.today), "KPI")
    if kpi.state == "pass":
        metric = facts.get("kpi.metric")
        kpi = Piece("pass", f"KPI {_echo(metric)} {facts.get('kpi.baseline')} → {facts.get('kpi.target')}")
    elif kpi.state != MISSING:
        kpi = Piece(MISSING, f"a complete KPI (metric, baseline, target, owner, review date; {kpi.text})")
    return [use, kpi]


def _data_readiness(facts: Facts) -> list[Piece]:
    return [_gate(facts, "data_check", "a data_check result")]


def _mlops_foundation(facts: Facts) -> list[Piece]:
    lineage = _checks(facts, "lineage", lambda: check_lineage(dict(facts.manifest), facts.version), "lineage")
    if lineage.state == "pass":
        lineage = Piece("pass", "artifacts, datasets, code and run pinned")
    return [lineage, _value(facts, "operations.ci", "a CI pipeline (operations.ci)"),
            _value(facts, "operations.monitoring", "a monitoring plan (operations.monitoring)")]


def _security(facts: Facts) -> list[Piece]:
    return [_gate(facts, "security_scan", "a security_scan result")]


def _compliance(facts: Facts) -> list[Piece]:
    judged = [c for c in facts.checks if c.status is not Status.SKIPPED]
    if not judged:
        return [Piece(MISSING, "this gate's checks (every concern disabled or skipped)")]
    bad = sum(1 for c in judged if c.status in (Status.FAIL, Status.ERROR))
    warned = sum(1 for c in judged if c.status is Status.WARN)
    if bad:
        return [Piece("fail", f"{bad} of {len(judged)} compliance check(s) failed")]
    if warned:
        return [Piece("warn", f"{warned} of {len(judged)} compliance check(s) warn")]
    return [Piece("pass", f"{len(judged)} compliance check(s) pass")]


def _integration_plan(facts: Facts) -> list[Piece]:
    return [_value(facts, "serving_endpoint", "a serving endpoint (serving_endpoint)"),
            _value(facts, "operations.consumers", "the consumers that call the model (operations.consumers)")]


def _change_management(facts: Facts) -> list[Piece]:
    return [_value(facts, "operations.runbook", "a runbook (operations.runbook)"),
            _value(facts, "operations.on_call", "who is on call (operations.on_call)")]


def _cost_figures(entry: Any) -> str:
    """``$0.0123 per 1,000 predictions, $850.00 per month`` from a cost gate's metrics ('' without them)."""
    metrics = entry.get("metrics") if isinstance(entry, Mapping) else getattr(entry, "metrics", None)
    if not isinstance(metrics, Mapping):
        return ""
    parts = []
    for name, unit in (("cost.per_1000", "per 1,000 predictions"), ("cost.per_month", "per month")):
        value = metrics.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            parts.append(f"${value:,.4g} {unit}" if value < 1 else f"${value:,.2f} {unit}")
    return ", ".join(parts)


def _cost_model(facts: Facts) -> list[Piece]:
    piece = _gate(facts, "cost", "a cost gate result")
    figures = _cost_figures((facts.earlier_gates or {}).get("cost"))
    if piece.state != MISSING and figures:
        piece = Piece(piece.state, f"{piece.text}: {figures}")
    if piece.state == MISSING and present(facts.get("operations.cost_model")):
        piece = Piece(MISSING, f"{piece.text}; an estimate is declared (operations.cost_model) but no cost gate "
                               f"checked it")
    return [piece]


_EVIDENCE: dict[str, Callable[[Facts], list[Piece]]] = {
    "executive_sponsor": _executive_sponsor, "use_case_and_kpi": _use_case_and_kpi,
    "data_readiness": _data_readiness, "mlops_foundation": _mlops_foundation, "security": _security,
    "compliance": _compliance, "integration_plan": _integration_plan, "change_management": _change_management,
    "cost_model": _cost_model,
}
assert set(_EVIDENCE) == set(FACTORS)


def score_readiness(facts: Facts, config: ReadinessConfig) -> tuple[list[CheckResult], list[dict[str, Any]]]:
    """The scorecard: one check per factor (in :data:`FACTORS` order) and one row per factor."""
    checks: list[CheckResult] = []
    rows: list[dict[str, Any]] = []
    for factor in FACTORS:
        title = TITLES[factor]
        pieces = _EVIDENCE[factor](facts)
        state = min((p.state for p in pieces), key=_RANK.__getitem__)
        if state == MISSING:
            lacking = [p.text for p in pieces if p.state == MISSING]
            status = Status.FAIL if factor in config.required else Status(config.missing.value)
            evidence = MISSING
            message = f"{title}: missing — {'; '.join(lacking)}"
            found = [p.text for p in pieces if p.state != MISSING]
            if found:
                message += f" (found: {'; '.join(found)})"
        else:
            # The scorecard asks whether the evidence exists: a gate or check that warned is evidence that
            # exists (its warning is shown where it was raised, and named here), so only failures count.
            status = Status.FAIL if state == "fail" else Status.PASS
            evidence = "; ".join(p.text for p in pieces)
            message = f"{title}: {evidence}"
        checks.append(CheckResult(id=f"readiness:{factor}", status=status, observed=evidence,
                                  threshold="required" if factor in config.required else config.missing.value,
                                  message=message))
        rows.append({"factor": factor, "title": title, "status": status.value, "evidence": evidence,
                     "missing": state == MISSING})
    return checks, rows

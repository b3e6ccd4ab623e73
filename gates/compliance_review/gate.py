"""The ``compliance_review`` gate as the registry sees it: id, version, config model and ``evaluate``.

One evaluation runs the concerns in order on one :class:`~gates.compliance_review.context.Review`
— model card, fairness, personal data, lineage, KPI, evaluation metrics, champion, regulatory
controls, readiness scorecard — each on its own: a concern that crashes becomes one ``error``
check named after it while the others still report. Then it writes the evidence document and
builds the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from clearance.core.clock import aware_now
from gates.base import CheckResult, GateInputs, GateResult, Status, register_gate
from gates.compliance_review.business_case import binary_metrics, check_kpi, compare_champion
from gates.compliance_review.config import ComplianceReviewConfig, Levels
from gates.compliance_review.context import Review, echo
from gates.compliance_review.evidence import MAX_GROUPS, bounded, write_table
from gates.compliance_review.lineage import check_lineage
from gates.compliance_review.model_card import (
    REQUIRED_BY_TIER,
    SECTIONS,
    check_model_card,
    read_model_card,
    section_written,
)
from gates.compliance_review.readiness import Facts, score_readiness
from gates.compliance_review.regulatory import RegulatoryMap, judge_controls
from gates.data_check.models import DatasetReadError
from gates.evidence import checks_summary, evidence_directory, run_concerns

if TYPE_CHECKING:  # NumPy and Arrow come with these: imported by the concerns that need them, when they run
    from gates.compliance_review.fairness import FairnessResult, FairnessThresholds
    from gates.compliance_review.personal_data import ColumnPII, Declaration

PREDICTIONS = "predictions"
EVALUATION_METRICS = ("auc", "precision", "recall", "ece")
FAIRNESS_METRICS = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                    "equalized_odds_ratio")

Concern = Callable[[Review, list[CheckResult]], list[CheckResult]]


def _skipped(check_id: str, why: str) -> list[CheckResult]:
    return [CheckResult(id=check_id, status=Status.SKIPPED, message=why)]


_DISABLED = "disabled by the tier's config"


# --------------------------------------------------------------------------- model card


def _model_card(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.model_card
    markdown = r.extra.get("model_card_markdown")
    r.card = read_model_card(r.manifest, markdown if isinstance(markdown, str) else None)
    if not cfg.enabled:
        return _skipped("model_card", f"model card: {_DISABLED}")
    tier = r.manifest.get("risk_tier")
    required: set[str] = set(cfg.required) if cfg.required is not None else \
        set(REQUIRED_BY_TIER.get(tier if isinstance(tier, str) else "", REQUIRED_BY_TIER["high"]))
    checks = check_model_card(r.card, required, min_words=cfg.min_words)
    unread = r.extra.get("model_card_error")
    if isinstance(unread, str) and r.card.source != "manifest":
        # The version names a Markdown card the task could not read: say why, rather than "no card".
        checks = [c for c in checks if c.id != "model_card"]
        checks.insert(0, CheckResult(id="model_card", status=Status.ERROR, observed=echo(unread, 300),
                                     message=f"the version's model card file could not be read: {echo(unread, 300)}"))
    r.table["model_card"] = {
        "source": r.card.source, "size": r.card.size, "required": sorted(required),
        "written": [s for s in SECTIONS if section_written(r.card, s, min_words=cfg.min_words)],
    }
    return checks


# --------------------------------------------------------------------------- fairness


def _thresholds(r: Review) -> FairnessThresholds:
    from gates.compliance_review.fairness import FairnessThresholds, Limits

    def limits(levels: Levels) -> Limits:
        return Limits(warn=levels.warn, fail=levels.fail)

    f = r.config.fairness
    return FairnessThresholds(demographic_parity_difference=limits(f.demographic_parity_difference),
                              equalized_odds_difference=limits(f.equalized_odds_difference),
                              demographic_parity_ratio=limits(f.demographic_parity_ratio),
                              equalized_odds_ratio=limits(f.equalized_odds_ratio))


def _no_predictions(r: Review, what: str) -> str | None:
    """Why ``what`` cannot be measured on this version's predictions (None when it can)."""
    ev = r.evaluation
    if ev is None:
        return f"{what}: the version has no evaluation section (label, prediction, score, protected_attributes)"
    if not r.has(PREDICTIONS):
        return f"{what}: no predictions dataset (a dataset of role {PREDICTIONS} on the evaluation set)"
    return None


def _columns(r: Review, names: list[str], check_id: str) -> tuple[Any, CheckResult | None]:
    """The named columns of the predictions dataset, or an error check naming what is missing."""
    reader = r.reader(PREDICTIONS)
    missing = [n for n in dict.fromkeys(names) if n not in reader.columns]
    if missing:
        shown = ", ".join(repr(echo(m, 60)) for m in missing[:10])
        return None, CheckResult(id=check_id, status=Status.ERROR, observed=[echo(m, 60) for m in missing[:10]],
                                 message=f"the predictions dataset ({echo(reader.locator.uri)}) lacks column(s) "
                                         f"{shown}")
    return reader.table(list(dict.fromkeys(names))), None


def _fairness_table(result: FairnessResult, ev: dict[str, Any]) -> dict[str, Any]:
    attributes = []
    for attr in result.attributes:
        groups, cut = bounded([
            {"name": g.name, "size": g.size, "positives": g.positives, "negatives": g.negatives,
             "selected": g.selected, "selection_rate": g.selection_rate, "tpr": g.tpr, "fpr": g.fpr,
             "mean_score": g.mean_score, "too_small": g.too_small} for g in attr.groups], MAX_GROUPS)
        attributes.append({"attribute": attr.attribute, "columns": list(attr.columns), "groups": groups,
                           "groups_cut": cut, **{m: getattr(attr, m) for m in FAIRNESS_METRICS}})
    return {"rows": result.rows, "min_group_size": result.min_group_size, "label": ev.get("label"),
            "prediction": ev.get("prediction"), "score": ev.get("score"), "attributes": attributes}


def _fairness(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.fairness
    if not cfg.enabled:
        return _skipped("fairness", f"fairness: {_DISABLED}")
    why = _no_predictions(r, "fairness")
    ev = r.evaluation or {}
    attributes = [a for a in ev.get("protected_attributes") or [] if isinstance(a, str)]
    if why is None and not attributes:
        why = "fairness: the version's evaluation names no protected_attributes"
    if why is not None:
        return [CheckResult(id="fairness", status=Status.FAIL if cfg.required else Status.SKIPPED,
                            threshold="required" if cfg.required else None, message=why)]
    label, prediction, score = ev.get("label"), ev.get("prediction"), ev.get("score")
    if not isinstance(label, str) or not isinstance(prediction, str):
        return [CheckResult(id="fairness", status=Status.ERROR,
                            message="fairness: the evaluation section must name the label and prediction columns")]
    score = score if isinstance(score, str) and score else None
    intersections = [(p[0], p[1]) for p in ev.get("intersections") or []
                     if isinstance(p, list | tuple) and len(p) == 2]
    table, error = _columns(r, [label, prediction, *attributes, *([score] if score else [])], "fairness")
    if error is not None:
        return [error]
    from gates.compliance_review.fairness import fairness_from_table, judge_fairness

    try:
        result = fairness_from_table(table, label=label, prediction=prediction, attributes=attributes, score=score,
                                     min_group_size=cfg.min_group_size, intersections=intersections)
    except ValueError as exc:
        return [CheckResult(id="fairness", status=Status.ERROR, message=f"fairness: {echo(exc, 300)}")]
    r.table["fairness"] = _fairness_table(result, ev)
    for attr in result.attributes:
        for metric in FAIRNESS_METRICS:
            value = getattr(attr, metric)
            if value is not None and math.isfinite(value):
                r.metrics[f"fairness.{attr.attribute}.{metric}"] = float(value)
    checks = judge_fairness(result, _thresholds(r))
    if not checks:
        checks = [CheckResult(id="fairness", status=Status.PASS, observed=len(result.attributes),
                              message="fairness measured on the predictions; no levels are configured")]
    return checks


# --------------------------------------------------------------------------- personal data


def _declarations(r: Review) -> dict[str, Declaration]:
    from gates.compliance_review.personal_data import Declaration

    raw = r.manifest.get("personal_data")
    declared: dict[str, Declaration] = {}
    if not isinstance(raw, dict):
        return declared
    for column, value in raw.items():
        if not isinstance(column, str):
            continue
        value = value if isinstance(value, dict) else {}
        basis, retention = value.get("lawful_basis"), value.get("retention")
        declared[column] = Declaration(lawful_basis=basis if isinstance(basis, str) else None,
                                       retention=retention if isinstance(retention, str) else None)
    return declared


def _scan(reader: Any, name: str, sample: int | None) -> ColumnPII:
    """One column's scan; a column of a type no detector reads (floats, booleans…) is not read at all."""
    from gates.compliance_review.personal_data import ColumnPII, scan_column, scannable

    data_type = reader.schema.field(name).type
    if not scannable(data_type, name):
        rows = reader.num_rows
        return ColumnPII(column=name, rows=rows, scanned=0, non_null=0, skipped=f"type {data_type} is not scanned")
    return scan_column(reader.column(name), name, sample=sample)


def _personal_data(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.personal_data
    if not cfg.enabled:
        return _skipped("personal_data", f"personal data: {_DISABLED}")
    roles = r.roles()
    if not roles:
        return _skipped("personal_data", "personal data: no datasets were given to scan")
    from gates.compliance_review.personal_data import judge_personal_data

    errors: list[CheckResult] = []
    results: dict[str, list[ColumnPII]] = {}
    for role in roles:
        try:
            reader = r.reader(role)
            results[role] = [_scan(reader, name, cfg.sample) for name in reader.columns]
        except DatasetReadError as exc:
            errors.append(CheckResult(id=f"personal_data:{echo(role, 60)}", status=Status.ERROR,
                                      message=f"personal data: the {echo(role, 60)} dataset could not be read: "
                                              f"{echo(exc, 300)}"))
    judged = judge_personal_data(results, _declarations(r), min_rate=cfg.min_rate)
    rows = [{"role": role, **scan.model_dump()} for role, scans in results.items() for scan in scans]
    r.table["personal_data"], cut = bounded(rows)
    if cut:
        r.table["truncated"]["personal_data"] = cut
    flagged = sum(1 for scans in results.values() for scan in scans if scan.found(cfg.min_rate))
    undeclared = sum(1 for c in judged if c.status is Status.FAIL)
    r.metrics["personal_data.columns_flagged"] = float(flagged)
    r.metrics["personal_data.columns_failed"] = float(undeclared)
    summary: list[CheckResult] = []
    if results:
        columns = sum(len(scans) for scans in results.values())
        sample = f" (sample of {cfg.sample} rows each)" if cfg.sample else ""
        summary.append(CheckResult(
            id="personal_data", status=Status.PASS, observed={"columns": columns, "flagged": flagged},
            threshold={"min_rate": cfg.min_rate},
            message=f"scanned {columns} column(s) of {len(results)} dataset(s){sample}: {flagged} hold personal "
                    f"data, {undeclared} of them fail (undeclared or declared without lawful basis and retention)"))
    return summary + errors + judged


# --------------------------------------------------------------------------- lineage


_RECORDED = ("lineage:code_revision", "lineage:training_run")


def _lineage(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.lineage
    if not cfg.enabled:
        return _skipped("lineage", f"lineage: {_DISABLED}")
    checks = check_lineage(r.manifest, r.inputs.version)
    if cfg.missing.value == "warn":
        checks = [c.model_copy(update={"status": Status.WARN}) if c.id in _RECORDED and c.status is Status.FAIL
                  else c for c in checks]
    r.table["lineage"] = [{"id": c.id, "status": c.status.value, "message": c.message} for c in checks]
    return checks


# --------------------------------------------------------------------------- business case


def _kpi(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.business
    if not cfg.enabled:
        return _skipped("kpi", f"business case: {_DISABLED}")
    checks = check_kpi(r.manifest, today=r.now.date())
    if not cfg.kpi_required:
        checks = [c.model_copy(update={"status": Status.WARN}) if c.status is Status.FAIL else c for c in checks]
    return checks


def _metrics(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    if not r.config.business.enabled:
        return []
    why = _no_predictions(r, "evaluation metrics")
    if why is not None:
        return _skipped("business:metrics", why)
    ev = r.evaluation or {}
    label, prediction, score = ev.get("label"), ev.get("prediction"), ev.get("score")
    column = score if isinstance(score, str) and score else prediction
    if not isinstance(label, str) or not isinstance(column, str):
        return [CheckResult(id="business:metrics", status=Status.ERROR,
                            message="evaluation metrics: the evaluation section must name the label and a score "
                                    "or prediction column")]
    threshold = ev.get("threshold", 0.5)
    threshold = 0.5 if threshold is None else threshold
    table, error = _columns(r, [label, column], "business:metrics")
    if error is not None:
        return [error]
    import numpy as np

    try:
        y_true = table.column(label)
        values = table.column(column)
        for name, col in ((label, y_true), (column, values)):
            if col.null_count:
                raise ValueError(f"column {echo(name, 60)!r} has {col.null_count} null value(s)")
        metrics = binary_metrics(np.asarray(y_true.to_numpy(zero_copy_only=False)),
                                 np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64),
                                 float(threshold))
    except (ValueError, TypeError) as exc:
        return [CheckResult(id="business:metrics", status=Status.ERROR,
                            message=f"evaluation metrics could not be computed: {echo(exc, 300)}")]
    r.challenger = {m: float(v) for m in EVALUATION_METRICS if isinstance(v := metrics.get(m), int | float)}
    for name, value in r.challenger.items():
        r.metrics[f"evaluation.{name}"] = value
    r.table["business"]["metrics"] = {**metrics, "score_column": column}
    r.table["business"]["predictions_sha256"] = r.dataset_sha256(PREDICTIONS)
    shown = ", ".join(f"{m} {metrics[m]:.4f}" for m in EVALUATION_METRICS if metrics.get(m) is not None)
    source = "score" if column == score else "predicted label (no score column)"
    return [CheckResult(id="business:metrics", status=Status.PASS, observed=dict(r.challenger),
                        threshold={"threshold": float(threshold)},
                        message=f"on {metrics['rows']} rows ({source}, threshold {float(threshold):g}): {shown}")]


def _strip(metrics: Any) -> dict[str, Any]:
    """Champion metrics keyed by metric name: the stored result's ``evaluation.<metric>`` keys lose the prefix."""
    if not isinstance(metrics, dict):
        return {}
    return {str(k).removeprefix("evaluation."): v for k, v in metrics.items()}


def _champion(r: Review, _: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.business
    if not cfg.enabled:
        return []
    rules: dict[str, tuple[str, float, float]] = {
        m: (rule.direction, rule.abs_tolerance, rule.rel_tolerance) for m, rule in cfg.champion.items()}
    if not rules:
        return []
    if "champion" not in r.extra:
        return [CheckResult(id=f"business:champion:{m}", status=Status.SKIPPED,
                            message=f"{m}: the champion was not looked up (pre-flight)") for m in rules]
    champion = r.extra.get("champion")
    if isinstance(champion, dict) and "error" in champion:
        r.table["business"]["champion"] = {"error": echo(champion.get("error"), 500)}
        return [CheckResult(id="business:champion", status=Status.ERROR,
                            message=f"the production model's evidence could not be read: "
                                    f"{echo(champion.get('error'), 300)}")]
    if champion is not None and not isinstance(champion, dict):
        return [CheckResult(id="business:champion", status=Status.ERROR,
                            message=f"the champion given is not a mapping ({type(champion).__name__})")]
    if champion is None:
        return compare_champion(r.challenger or {}, None, rules)
    if "unjudged" in champion:  # live before this gate existed: not compared, and the approvers are told so
        r.table["business"]["champion"] = {"version": echo(champion.get("version") or "?", 40),
                                           "unjudged": echo(champion.get("unjudged"), 500)}
        why = echo(champion.get("unjudged"), 300)
        return [CheckResult(id="business:champion", status=Status.WARN,
                            message=f"not compared with the model in production: {why}")]
    r.table["business"]["champion"] = {k: champion.get(k) for k in ("version", "run_id", "predictions_sha256")} | {
        "metrics": _strip(champion.get("metrics"))}
    if r.challenger is None:
        return [CheckResult(id=f"business:champion:{m}", status=Status.SKIPPED,
                            message=f"{m}: this version has no evaluation metrics (see business:metrics)")
                for m in rules]
    checks = compare_champion(r.challenger, _strip(champion.get("metrics")), rules)
    theirs, ours = champion.get("predictions_sha256"), r.dataset_sha256(PREDICTIONS)
    version = echo(champion.get("version") or "?", 40)
    if isinstance(theirs, str) and isinstance(ours, str) and theirs != ours:
        note = (f" — note: the evaluation sets differ (champion {version} was evaluated on predictions "
                f"{theirs[:12]}…, this version on {ours[:12]}…)")
        checks = [c.model_copy(update={
            "message": c.message + note,
            "observed": (c.observed if isinstance(c.observed, dict) else {"value": c.observed})
            | {"champion_predictions_sha256": theirs, "predictions_sha256": ours}}) for c in checks]
    else:
        checks = [c.model_copy(update={"message": f"{c.message} (champion {version})"}) for c in checks]
    return checks


# --------------------------------------------------------------------------- regulatory


def _tags(r: Review) -> list[str]:
    tags: list[str] = list(r.config.regulatory.tags)
    for raw in (r.manifest.get("regulatory_tags"), r.extra.get("regulatory_tags")):
        if isinstance(raw, list):
            tags += [t for t in raw if isinstance(t, str)]
    return list(dict.fromkeys(tags))


def _regulatory(r: Review, checks_so_far: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.regulatory
    if not cfg.enabled:
        return _skipped("regulatory", f"regulatory mapping: {_DISABLED}")
    tags = _tags(r)
    r.table["regulatory"]["tags"] = [echo(t, 64) for t in tags[:64]]
    if not tags:
        return _skipped("regulatory", "no regulatory tags on the tier, the model or the gate config")
    raw = r.extra.get("regulatory_map")
    if raw is None:
        return [CheckResult(id="regulatory", status=Status.ERROR, observed=[echo(t, 64) for t in tags[:10]],
                            message=f"regulatory tags {', '.join(echo(t, 64) for t in tags[:10])} need the mapping "
                                    f"file (configs/regulatory.yaml), and none was given")]
    try:
        mapping = raw if isinstance(raw, RegulatoryMap) else RegulatoryMap.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(map)"
        return [CheckResult(id="regulatory", status=Status.ERROR,
                            message=f"the regulatory mapping is invalid: {where}: {echo(first['msg'], 300)}")]
    checks, table = judge_controls(tags, mapping, checks_so_far, r.earlier_gates, r.card, r.manifest,
                                   min_words=r.config.model_card.min_words)
    r.table["regulatory"]["controls"], cut = bounded(table)
    if cut:
        r.table["regulatory"]["controls_cut"] = cut
    return checks


# --------------------------------------------------------------------------- readiness


def _readiness(r: Review, checks_so_far: list[CheckResult]) -> list[CheckResult]:
    cfg = r.config.readiness
    if not cfg.enabled:
        return _skipped("readiness", f"readiness scorecard: {_DISABLED}")
    facts = Facts(manifest=r.manifest, version=r.inputs.version, card=r.card, checks=checks_so_far,
                  earlier_gates=r.earlier_gates, today=r.now.date(), min_words=r.config.model_card.min_words)
    checks, rows = score_readiness(facts, cfg)
    r.table["scorecard"] = rows
    r.metrics["readiness.present"] = float(sum(1 for row in rows if not row["missing"]))
    r.metrics["readiness.missing"] = float(sum(1 for row in rows if row["missing"]))
    return checks


#: The concerns in the order their checks are reported; the id names the error check of a crash.
CONCERNS: tuple[tuple[str, Concern], ...] = (
    ("model_card", _model_card), ("fairness", _fairness), ("personal_data", _personal_data),
    ("lineage", _lineage), ("kpi", _kpi), ("business:metrics", _metrics), ("business:champion", _champion),
    ("regulatory", _regulatory), ("readiness", _readiness),
)


@register_gate
class ComplianceReviewGate:
    """Model card, fairness, personal data, lineage, business case and regulatory controls, judged from
    evidence, and the readiness scorecard an approver reads first."""

    id: ClassVar[str] = "compliance_review"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = ComplianceReviewConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        assert isinstance(config, ComplianceReviewConfig)
        review = Review(inputs=inputs, config=config, now=aware_now(inputs.extra.get("now")))
        checks = run_concerns([(concern, partial(run, review)) for concern, run in CONCERNS], explain=_explain)
        evidence = [write_table(evidence_directory(inputs, self.id), review.table, checks_summary(checks, review.now))]
        return GateResult.from_checks(self.id, self.version, checks, metrics=review.metrics, evidence=evidence,
                                      input_digests=review.digests, message=_message(review, checks))


def _explain(exc: Exception) -> str:
    """Why a concern could not be checked: a dataset's own read error says it all; anything else by its type."""
    return echo(str(exc) if isinstance(exc, DatasetReadError) else f"{type(exc).__name__}: {exc}", 300)


def _message(r: Review, checks: list[CheckResult]) -> str:
    """One line: each concern's verdict, then the scorecard's count."""
    groups = (("model card", "model_card"), ("fairness", "fairness"), ("personal data", "personal_data"),
              ("lineage", "lineage"), ("KPI", "kpi"), ("metrics", "business:metrics"),
              ("champion", "business:champion"), ("regulatory", "regulatory"))
    parts = []
    for label, prefix in groups:
        mine = [c for c in checks if c.id == prefix or c.id.startswith(prefix + ":")]
        if not mine:
            continue
        problems = [c for c in mine if c.status in (Status.FAIL, Status.ERROR, Status.WARN)]
        if problems:
            parts.append(f"{label}: {len(problems)} problem(s)")
        elif all(c.status is Status.SKIPPED for c in mine):
            parts.append(f"{label}: skipped")
        else:
            parts.append(f"{label}: ok")
    rows = r.table.get("scorecard") or []
    if rows:
        missing = [row["factor"] for row in rows if row["missing"]]
        parts.append(f"readiness {len(rows) - len(missing)}/{len(rows)}"
                     + (f" (missing: {', '.join(missing)})" if missing else ""))
    return "; ".join(parts)

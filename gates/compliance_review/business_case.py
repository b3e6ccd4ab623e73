"""The business case of a model: its KPI is owned and reviewed, and it is no worse than the champion.

Pure, three pieces:

- :func:`check_kpi` — the manifest's ``kpi`` must carry ``metric`` (non-empty text), ``baseline`` and
  ``target`` (finite numbers, not booleans), ``owner`` (non-empty text) and ``review_date`` (an ISO date,
  ``YYYY-MM-DD``, not before ``today``; a review date of today passes). Ids ``kpi`` (missing or not a
  mapping: one failed check) and ``kpi:<field>``. Hostile values become failed checks, never exceptions.
- :func:`binary_metrics` — AUC, precision and recall at a threshold, and expected calibration error of a
  binary classifier's scores, vectorised with numpy.
- :func:`compare_champion` — the challenger's metrics against the production model's (champion's) on the
  same evaluation set. Ids ``business:champion:<metric>``.

Decisions:

- **Predicted positive** is ``score >= threshold``.
- **AUC** is the Mann-Whitney statistic on average ranks (ties share the mean of their ranks, so a
  positive tied with a negative counts one half), equal to ``sklearn.metrics.roc_auc_score``. ``None``
  when only one class is present (scikit-learn raises).
- **Precision** with no predicted positive and **recall** with no true positive are 0.0 (scikit-learn's
  ``zero_division`` default, without its warning); ``predicted_positive`` and ``positives`` tell them apart.
- **ECE** uses 10 equal-width bins over [0, 1]: bin ``min(floor(10 * score), 9)`` (so bin k is
  [k/10, (k+1)/10), the last one closed at 1.0); ECE = Σ_bins (n_bin / n) · |mean(y_true) − mean(score)|
  over non-empty bins. Scores outside [0, 1] make ECE ``None`` (they are not probabilities); AUC, precision
  and recall are still computed.
- **Tolerance** of a rule ``(direction, abs_tolerance, rel_tolerance)`` is the larger of ``abs_tolerance``
  and ``rel_tolerance * |champion|`` (as :func:`math.isclose`). The challenger fails when it is worse than
  the champion by more than the tolerance; exactly at the tolerance passes. "Exactly" forgives float
  noise of the subtraction (1e-12 relative), so 0.80 → 0.75 with ``abs_tolerance=0.05`` passes.
- A metric the challenger lacks, a non-finite value or an invalid rule is an ``error`` (cannot decide); a
  metric the champion lacks, or no champion at all, is ``skipped`` with why.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from gates.base import CheckResult, Status

if TYPE_CHECKING:  # NumPy is imported by the metrics when they are computed: reading a KPI needs none of it
    import numpy as np
    import numpy.typing as npt

ECE_BINS = 10
MAX_TEXT_CHARS = 1000
MAX_ECHO_CHARS = 80
_FLOAT_SLACK = 1e-12

Rule = tuple[str, float, float]


def _echo(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= MAX_ECHO_CHARS else f"{value[:MAX_ECHO_CHARS]}… ({len(value)} chars)"
        return repr(text)
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- KPI


def _text(kpi: dict[str, Any], field: str) -> CheckResult:
    value = kpi.get(field)
    check_id = f"kpi:{field}"
    if isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT_CHARS:
        return CheckResult(id=check_id, status=Status.PASS, observed=value, message=f"kpi.{field}: {value}")
    if value is None:
        what = "missing"
    elif isinstance(value, str) and value.strip():
        what = f"longer than {MAX_TEXT_CHARS} characters"
    else:
        what = f"not a non-empty string ({_echo(value)})"
    return CheckResult(id=check_id, status=Status.FAIL, message=f"kpi.{field} is {what}")


def _number(kpi: dict[str, Any], field: str) -> CheckResult:
    value = kpi.get(field)
    check_id = f"kpi:{field}"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return CheckResult(id=check_id, status=Status.PASS, observed=float(value), message=f"kpi.{field}: {value}")
    shown = value if isinstance(value, float) else _echo(value)
    what = "missing" if value is None else f"not a finite number ({shown})"
    return CheckResult(id=check_id, status=Status.FAIL, message=f"kpi.{field} is {what}")


def _review_date(kpi: dict[str, Any], today: date) -> CheckResult:
    value = kpi.get("review_date")
    check_id = "kpi:review_date"
    when: date | None = None
    if isinstance(value, date):  # YAML loads an unquoted date as a date
        when = value.date() if isinstance(value, datetime) else value
    elif isinstance(value, str) and len(value) == 10:
        try:
            when = date.fromisoformat(value)
        except ValueError:
            when = None
    if when is None:
        what = "missing" if value is None else f"not an ISO date YYYY-MM-DD ({_echo(value)})"
        return CheckResult(id=check_id, status=Status.FAIL, threshold="YYYY-MM-DD",
                           message=f"kpi.review_date is {what}")
    if when < today:
        return CheckResult(id=check_id, status=Status.FAIL, observed=when.isoformat(), threshold=today.isoformat(),
                           message=f"kpi.review_date {when.isoformat()} is in the past (today is {today.isoformat()})")
    return CheckResult(id=check_id, status=Status.PASS, observed=when.isoformat(), threshold=today.isoformat(),
                       message=f"KPI review due {when.isoformat()}")


def check_kpi(manifest: dict[str, Any], *, today: date) -> list[CheckResult]:
    """The KPI checks of ``manifest`` (the ModelManifest as JSON) as of ``today``."""
    kpi = manifest.get("kpi") if isinstance(manifest, dict) else None
    if not isinstance(kpi, dict):
        what = "missing" if kpi is None else f"not a mapping ({_echo(kpi)})"
        return [CheckResult(id="kpi", status=Status.FAIL,
                            message=f"kpi is {what}: the manifest must name the business metric the model moves, "
                                    "its baseline, target, owner and review date")]
    return [_text(kpi, "metric"), _number(kpi, "baseline"), _number(kpi, "target"), _text(kpi, "owner"),
            _review_date(kpi, today)]


# --------------------------------------------------------------------------- metrics


def _average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks of ``values``, ties sharing the mean of their ranks."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    n = ordered.shape[0]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 … ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def binary_metrics(y_true: npt.ArrayLike, score: npt.ArrayLike, threshold: float) -> dict[str, float | int | None]:
    """AUC, precision and recall at ``threshold``, and ECE (10 bins) of binary labels and scores."""
    import numpy as np

    truth = np.asarray(y_true)
    scores = np.asarray(score, dtype=np.float64)
    if truth.ndim != 1 or truth.shape[0] == 0:
        raise ValueError("true label must be a non-empty 1-d array")
    if scores.shape != truth.shape:
        raise ValueError(f"score has shape {scores.shape}, true label {truth.shape}")
    if not np.all((truth == 0) | (truth == 1)):
        raise ValueError("true label must be 0 or 1")
    if not bool(np.all(np.isfinite(scores))):
        raise ValueError("score has non-finite values")
    if not math.isfinite(threshold):
        raise ValueError("threshold must be finite")
    y = truth.astype(np.int64)
    n = int(y.shape[0])
    positives = int(y.sum())
    negatives = n - positives

    auc: float | None = None
    if positives and negatives:
        ranks = _average_ranks(scores)
        auc = float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))

    predicted = scores >= threshold
    predicted_positive = int(predicted.sum())
    true_pos = int((predicted & (y == 1)).sum())
    precision = true_pos / predicted_positive if predicted_positive else 0.0
    recall = true_pos / positives if positives else 0.0

    ece: float | None = None
    if bool(np.all((scores >= 0.0) & (scores <= 1.0))):
        bins = np.minimum(np.floor(scores * ECE_BINS).astype(np.int64), ECE_BINS - 1)
        label_sum = np.bincount(bins, weights=y, minlength=ECE_BINS)
        score_sum = np.bincount(bins, weights=scores, minlength=ECE_BINS)
        # |mean(y) − mean(score)| · n_bin / n == |Σy − Σscore| / n; empty bins contribute 0.
        ece = float(np.abs(label_sum - score_sum).sum() / n)

    return {"auc": auc, "precision": float(precision), "recall": float(recall), "ece": ece,
            "threshold": float(threshold), "rows": n, "positives": positives,
            "predicted_positive": predicted_positive}


# --------------------------------------------------------------------------- champion / challenger


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _valid_rule(rule: Any) -> str | None:
    """Why ``rule`` is invalid, or None."""
    if not isinstance(rule, tuple | list) or len(rule) != 3:
        return "a rule must be (direction, abs_tolerance, rel_tolerance)"
    direction, abs_tol, rel_tol = rule
    if direction not in ("higher", "lower"):
        return f"direction must be 'higher' or 'lower', got {_echo(direction)}"
    for name, tol in (("abs_tolerance", abs_tol), ("rel_tolerance", rel_tol)):
        if not _finite(tol) or tol < 0:
            return f"{name} must be a finite number >= 0"
    return None


def compare_champion(challenger: dict[str, float], champion: dict[str, float] | None,
                     rules: dict[str, Rule]) -> list[CheckResult]:
    """One check per ruled metric: is the challenger no worse than the champion beyond the tolerance?"""
    checks: list[CheckResult] = []
    for metric, rule in rules.items():
        check_id = f"business:champion:{metric}"
        why = _valid_rule(rule)
        if why is not None:
            checks.append(CheckResult(id=check_id, status=Status.ERROR, message=f"{metric}: {why}"))
            continue
        direction, abs_tol, rel_tol = rule
        threshold = {"direction": direction, "abs_tolerance": abs_tol, "rel_tolerance": rel_tol}
        if champion is None:
            checks.append(CheckResult(id=check_id, status=Status.SKIPPED, threshold=threshold,
                                      message=f"{metric}: no model in production to compare with (no champion)"))
            continue
        raw_new = challenger.get(metric)
        if not _finite(raw_new):
            what = "does not report" if raw_new is None else "has a non-finite"
            checks.append(CheckResult(id=check_id, status=Status.ERROR, threshold=threshold,
                                      message=f"{metric}: the challenger {what} {metric}"))
            continue
        new = float(raw_new)  # type: ignore[arg-type]  # _finite checked it
        raw_old = champion.get(metric)
        if raw_old is None:
            checks.append(CheckResult(id=check_id, status=Status.SKIPPED, observed=new, threshold=threshold,
                                      message=f"{metric}: the champion's evidence does not report {metric}"))
            continue
        if not _finite(raw_old):
            checks.append(CheckResult(id=check_id, status=Status.ERROR, observed=new, threshold=threshold,
                                      message=f"{metric}: the champion's {metric} is not a finite number"))
            continue
        old = float(raw_old)
        tolerance = max(float(abs_tol), float(rel_tol) * abs(old))
        worse_by = (old - new) if direction == "higher" else (new - old)
        slack = _FLOAT_SLACK * max(1.0, abs(old), abs(new))
        ok = worse_by <= tolerance + slack
        detail = (f"challenger {new:.6g} vs champion {old:.6g} ({direction} is better); "
                  f"worse by {max(worse_by, 0.0):.6g}, tolerance {tolerance:.6g} "
                  f"(max of abs {abs_tol:g} and rel {rel_tol:g} × |champion|)")
        checks.append(CheckResult(
            id=check_id, status=Status.PASS if ok else Status.FAIL,
            observed={"challenger": new, "champion": old, "worse_by": worse_by},
            threshold=threshold | {"tolerance": tolerance},
            message=f"{metric}: {detail}" + ("" if ok else " — the challenger is worse beyond the tolerance")))
    return checks

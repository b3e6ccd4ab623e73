"""Group fairness of a binary classifier on its evaluation predictions: pure, vectorised, Fairlearn-equal.

Inputs are a true label and a predicted label (both 0/1, no nulls), an optional score, and one or more
protected attribute columns. Per attribute (and per requested pair of attributes, whose groups are the
observed value pairs) :func:`compute_fairness` reports every group's size, selection rate, true positive
rate and false positive rate, and over the groups large enough to judge:

- demographic parity difference (max − min selection rate) and ratio (min / max),
- equalized odds difference: the larger of the TPR difference and the FPR difference,
- equalized odds ratio: the smaller of the TPR ratio and the FPR ratio,

each with the groups that set the extremes. The values equal ``fairlearn.metrics`` (``MetricFrame`` with
``selection_rate``, ``true_positive_rate``, ``false_positive_rate``; ``demographic_parity_difference`` /
``_ratio``, ``equalized_odds_difference`` / ``_ratio``, all ``method="between_groups"``, worst case) on the
same groups. Conventions, chosen to match Fairlearn:

- a group with no positive (true label 1) rows has TPR 0.0, and one with no negative rows FPR 0.0
  (Fairlearn's confusion matrix normalises an empty row to 0); :class:`GroupRates` says which via
  ``positives`` / ``negatives`` so a reader can tell "0 of 0" from "0 of 40".

Where this module decides on its own:

- groups smaller than ``min_group_size`` are listed with ``too_small=True`` and left out of the
  differences, ratios and extremes (never dropped from the report);
- nulls (None, NaN, Arrow nulls) in an attribute form their own group named ``"<null>"``; a real value
  spelled ``"<null>"`` would share that group. Group names are the values as text (Arrow's cast to string);
- a ratio whose denominator (the largest rate) is 0 is undefined (``None``) where Fairlearn gives NaN; the
  equalized odds ratio is then the defined one of the TPR and FPR ratios, ``None`` when neither is.

:func:`judge_fairness` turns a result into :class:`gates.base.CheckResult` s with ids
``fairness:<attribute>:<metric>`` (``fairness:<a>&<b>:<metric>`` for intersections).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from gates.base import CheckResult, Status
from gates.compliance_review.config import DEFAULT_MIN_GROUP_SIZE

NULL_GROUP = "<null>"

IntArray = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GroupRates:
    """One group of an attribute (or of a pair of attributes) and its rates."""

    name: str
    values: tuple[str, ...]
    size: int
    positives: int  # rows whose true label is 1 (TPR's denominator)
    negatives: int  # rows whose true label is 0 (FPR's denominator)
    selected: int  # rows predicted 1
    selection_rate: float
    tpr: float  # 0.0 when positives == 0 (as Fairlearn)
    fpr: float  # 0.0 when negatives == 0 (as Fairlearn)
    mean_score: float | None
    too_small: bool


@dataclass(frozen=True)
class Spread:
    """How far one rate varies over the judged groups, and which groups set the extremes."""

    metric: str
    difference: float
    ratio: float | None  # None when the largest rate is 0 (Fairlearn: NaN)
    min_value: float
    max_value: float
    min_group: str
    max_group: str


@dataclass(frozen=True)
class AttributeFairness:
    """Fairness over the groups of one attribute, or of an intersection of two."""

    attribute: str  # "sex", or "sex&age_band" for an intersection
    columns: tuple[str, ...]
    min_group_size: int
    groups: tuple[GroupRates, ...]
    selection_rate: Spread | None  # None when no group is large enough
    tpr: Spread | None
    fpr: Spread | None

    @property
    def judged(self) -> tuple[GroupRates, ...]:
        return tuple(g for g in self.groups if not g.too_small)

    @property
    def too_small(self) -> tuple[GroupRates, ...]:
        return tuple(g for g in self.groups if g.too_small)

    @property
    def demographic_parity_difference(self) -> float | None:
        return None if self.selection_rate is None else self.selection_rate.difference

    @property
    def demographic_parity_ratio(self) -> float | None:
        return None if self.selection_rate is None else self.selection_rate.ratio

    @property
    def equalized_odds_difference(self) -> float | None:
        if self.tpr is None or self.fpr is None:
            return None
        return max(self.tpr.difference, self.fpr.difference)

    @property
    def equalized_odds_ratio(self) -> float | None:
        if self.tpr is None or self.fpr is None:
            return None
        defined = [r for r in (self.tpr.ratio, self.fpr.ratio) if r is not None]
        return min(defined) if defined else None

    @property
    def equalized_odds_driver(self) -> Spread | None:
        """The rate (TPR or FPR) whose difference is the equalized odds difference."""
        if self.tpr is None or self.fpr is None:
            return None
        return self.tpr if self.tpr.difference >= self.fpr.difference else self.fpr


@dataclass(frozen=True)
class FairnessResult:
    rows: int
    min_group_size: int
    attributes: tuple[AttributeFairness, ...]

    def attribute(self, name: str) -> AttributeFairness:
        for a in self.attributes:
            if a.attribute == name:
                return a
        raise KeyError(name)


# --------------------------------------------------------------------------- computing

ArrayLike = Any  # numpy array, list, pyarrow Array / ChunkedArray


def _binary(values: ArrayLike, what: str) -> IntArray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if values.null_count:
            raise ValueError(f"{what} has {values.null_count} null value(s)")
        values = values.to_numpy(zero_copy_only=False)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional")
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric 0/1 or boolean, not {arr.dtype}")
    ok = (arr == 0) | (arr == 1)
    if not bool(np.all(ok)):
        bad = arr[~ok][:3].tolist()
        raise ValueError(f"{what} must hold only 0 and 1; found e.g. {bad}")
    return arr.astype(np.int64)


def _group_codes(values: ArrayLike, what: str) -> tuple[list[str], IntArray]:
    """Group labels (sorted, as text, nulls as ``<null>``) and each row's group index."""
    if isinstance(values, pa.ChunkedArray):
        arr: pa.Array = values.combine_chunks()
    elif isinstance(values, pa.Array):
        arr = values
    else:
        np_values = np.asarray(values)
        if np_values.ndim != 1:
            raise ValueError(f"attribute {what!r} must be one-dimensional")
        arr = pa.array(np_values, from_pandas=True)  # NaN → null
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_floating(arr.type):
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    # Dictionary-encode (hashing, no per-row Python), name the distinct values as text, then number them
    # in sorted order; nulls get the index after the last value (or that of a real "<null>").
    encoded = pc.dictionary_encode(arr)
    dictionary = encoded.dictionary
    if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
        dictionary = pc.cast(dictionary, pa.string())
    distinct = [str(v) for v in dictionary.to_pylist()]
    null_index = len(distinct)
    if encoded.indices.null_count:
        if NULL_GROUP in distinct:
            null_index = distinct.index(NULL_GROUP)
        else:
            distinct.append(NULL_GROUP)
    indices = pc.fill_null(encoded.indices, pa.scalar(null_index, encoded.indices.type))
    order = sorted(range(len(distinct)), key=distinct.__getitem__)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order] = np.arange(len(distinct), dtype=np.int64)
    codes = rank[indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    return [distinct[i] for i in order], codes


def _spread(metric: str, rates: npt.NDArray[np.float64], names: Sequence[str]) -> Spread:
    lo, hi = int(np.argmin(rates)), int(np.argmax(rates))
    min_value, max_value = float(rates[lo]), float(rates[hi])
    return Spread(metric=metric, difference=max_value - min_value,
                  ratio=(min_value / max_value) if max_value > 0 else None,
                  min_value=min_value, max_value=max_value, min_group=names[lo], max_group=names[hi])


def _attribute(name: str, columns: tuple[str, ...], labels: list[tuple[str, ...]], codes: IntArray,
               y_true: IntArray, y_pred: IntArray, score: npt.NDArray[np.float64] | None,
               min_group_size: int) -> AttributeFairness:
    n = len(labels)
    size = np.bincount(codes, minlength=n)
    positives = np.bincount(codes, weights=y_true, minlength=n).astype(np.int64)
    selected = np.bincount(codes, weights=y_pred, minlength=n).astype(np.int64)
    true_pos = np.bincount(codes, weights=y_true & y_pred, minlength=n).astype(np.int64)
    negatives = size - positives
    false_pos = selected - true_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        selection_rate = selected / size
        tpr = np.where(positives > 0, true_pos / np.maximum(positives, 1), 0.0)
        fpr = np.where(negatives > 0, false_pos / np.maximum(negatives, 1), 0.0)
        mean_score = None if score is None else np.bincount(codes, weights=score, minlength=n) / size
    names = [" & ".join(v) for v in labels]
    too_small = size < min_group_size
    groups = tuple(
        GroupRates(name=names[i], values=labels[i], size=int(size[i]), positives=int(positives[i]),
                   negatives=int(negatives[i]), selected=int(selected[i]),
                   selection_rate=float(selection_rate[i]), tpr=float(tpr[i]), fpr=float(fpr[i]),
                   mean_score=None if mean_score is None else float(mean_score[i]), too_small=bool(too_small[i]))
        for i in range(n)
    )
    keep = np.flatnonzero(~too_small)
    if keep.size == 0:
        return AttributeFairness(name, columns, min_group_size, groups, None, None, None)
    kept = [names[i] for i in keep]
    return AttributeFairness(name, columns, min_group_size, groups,
                             selection_rate=_spread("selection_rate", selection_rate[keep], kept),
                             tpr=_spread("tpr", tpr[keep], kept), fpr=_spread("fpr", fpr[keep], kept))


def compute_fairness(y_true: ArrayLike, y_pred: ArrayLike, attributes: Mapping[str, ArrayLike], *,
                     score: ArrayLike | None = None, min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
                     intersections: Iterable[tuple[str, str]] = ()) -> FairnessResult:
    """Per-group rates and their spread for each attribute and each requested pair of attributes."""
    if min_group_size < 1:
        raise ValueError("min_group_size must be at least 1")
    truth = _binary(y_true, "true label")
    pred = _binary(y_pred, "predicted label")
    rows = truth.shape[0]
    if pred.shape[0] != rows:
        raise ValueError(f"predicted label has {pred.shape[0]} rows, true label {rows}")
    scores: npt.NDArray[np.float64] | None = None
    if score is not None:
        if isinstance(score, pa.ChunkedArray | pa.Array):
            if score.null_count:
                raise ValueError(f"score has {score.null_count} null value(s)")
            score = score.to_numpy(zero_copy_only=False)
        scores = np.asarray(score, dtype=np.float64)
        if scores.shape != (rows,):
            raise ValueError(f"score has shape {scores.shape}, expected ({rows},)")
        if not bool(np.all(np.isfinite(scores))):
            raise ValueError("score has non-finite values")
    if not attributes:
        raise ValueError("no protected attribute given")

    coded: dict[str, tuple[list[str], IntArray]] = {}
    for name, values in attributes.items():
        labels, codes = _group_codes(values, name)
        if codes.shape[0] != rows:
            raise ValueError(f"attribute {name!r} has {codes.shape[0]} rows, true label {rows}")
        coded[name] = (labels, codes)

    results = [
        _attribute(name, (name,), [(label,) for label in labels], codes, truth, pred, scores, min_group_size)
        for name, (labels, codes) in coded.items()
    ]
    for a, b in intersections:
        for col in (a, b):
            if col not in coded:
                raise ValueError(f"intersection names {col!r}, which is not among the attributes")
        if a == b:
            raise ValueError(f"intersection of {a!r} with itself")
        (labels_a, codes_a), (labels_b, codes_b) = coded[a], coded[b]
        width = len(labels_b)
        pair = codes_a * width + codes_b
        present = np.bincount(pair, minlength=len(labels_a) * width) > 0  # observed pairs only, sorted
        observed = np.flatnonzero(present)
        pair_codes = (np.cumsum(present) - 1)[pair]
        pair_labels: list[tuple[str, ...]] = [(labels_a[int(p) // width], labels_b[int(p) % width]) for p in observed]
        results.append(_attribute(f"{a}&{b}", (a, b), pair_labels, pair_codes.astype(np.int64).reshape(-1),
                                  truth, pred, scores, min_group_size))
    return FairnessResult(rows=rows, min_group_size=min_group_size, attributes=tuple(results))


def fairness_from_table(table: pa.Table, *, label: str, prediction: str, attributes: Sequence[str],
                        score: str | None = None, min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
                        intersections: Iterable[tuple[str, str]] = ()) -> FairnessResult:
    """:func:`compute_fairness` over the named columns of an Arrow table."""
    missing = [c for c in (label, prediction, *attributes, *([score] if score else [])) if c not in table.column_names]
    if missing:
        raise ValueError(f"predictions table lacks column(s): {', '.join(missing)}")
    return compute_fairness(table.column(label), table.column(prediction),
                            {a: table.column(a) for a in attributes},
                            score=table.column(score) if score else None,
                            min_group_size=min_group_size, intersections=intersections)


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Limits:
    """Warn and fail levels of one metric: upper bounds for differences, lower bounds for ratios."""

    warn: float | None = None
    fail: float | None = None


@dataclass(frozen=True)
class FairnessThresholds:
    """Levels per metric; a metric with neither level set is reported but not checked."""

    demographic_parity_difference: Limits = field(default_factory=lambda: Limits(warn=0.1, fail=0.2))
    equalized_odds_difference: Limits = field(default_factory=lambda: Limits(warn=0.1, fail=0.2))
    demographic_parity_ratio: Limits = field(default_factory=lambda: Limits(warn=0.8))
    equalized_odds_ratio: Limits = field(default_factory=Limits)


_DIFFERENCES = ("demographic_parity_difference", "equalized_odds_difference")
_RATIOS = ("demographic_parity_ratio", "equalized_odds_ratio")


def _level(value: float, limits: Limits, *, upper: bool) -> Status:
    def beyond(level: float | None) -> bool:
        return level is not None and (value > level if upper else value < level)

    if beyond(limits.fail):
        return Status.FAIL
    if beyond(limits.warn):
        return Status.WARN
    return Status.PASS


def _small_note(attr: AttributeFairness) -> str:
    small = attr.too_small
    if not small:
        return ""
    listed = ", ".join(f"{g.name} ({g.size})" for g in small)
    return f"; too small to judge (< {attr.min_group_size} rows): {listed}"


def _extremes(metric: str, attr: AttributeFairness) -> str:
    if metric.startswith("demographic_parity"):
        spread = attr.selection_rate
    elif metric == "equalized_odds_difference":
        spread = attr.equalized_odds_driver
    else:  # equalized_odds_ratio: the rate whose ratio is the smaller
        assert attr.tpr is not None and attr.fpr is not None
        spread = attr.fpr if attr.tpr.ratio is None or (
            attr.fpr.ratio is not None and attr.fpr.ratio < attr.tpr.ratio) else attr.tpr
    assert spread is not None
    return (f"{spread.metric} lowest in {spread.min_group} ({spread.min_value:.4f}), "
            f"highest in {spread.max_group} ({spread.max_value:.4f})")


def judge_fairness(result: FairnessResult, thresholds: FairnessThresholds | None = None) -> list[CheckResult]:
    """One check per attribute and configured metric: pass, warn or fail at the levels; error if not judgeable."""
    thresholds = thresholds or FairnessThresholds()
    checks: list[CheckResult] = []
    for attr in result.attributes:
        for metric in (*_DIFFERENCES, *_RATIOS):
            limits: Limits = getattr(thresholds, metric)
            if limits.warn is None and limits.fail is None:
                continue
            check_id = f"fairness:{attr.attribute}:{metric}"
            threshold = {"warn": limits.warn, "fail": limits.fail}
            judged = attr.judged
            if len(judged) < 2:
                which = f"only {judged[0].name} has" if judged else "no group has"
                checks.append(CheckResult(
                    id=check_id, status=Status.ERROR, threshold=threshold,
                    message=f"{attr.attribute}: cannot compare groups, {which} at least {attr.min_group_size} "
                            f"rows{_small_note(attr)}"))
                continue
            value: float | None = getattr(attr, metric)
            if value is None:
                checks.append(CheckResult(
                    id=check_id, status=Status.SKIPPED, threshold=threshold,
                    message=f"{attr.attribute}: {metric} undefined (the largest rate is 0 in every compared "
                            f"group){_small_note(attr)}"))
                continue
            status = _level(value, limits, upper=metric in _DIFFERENCES)
            checks.append(CheckResult(
                id=check_id, status=status, observed=value, threshold=threshold,
                message=f"{attr.attribute}: {metric} {value:.4f} ({status.value}); {_extremes(metric, attr)}"
                        f"{_small_note(attr)}"))
    return checks

"""Lineage and business-case pieces of the compliance_review gate: each defect named, sklearn-equal metrics."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from gates.base import CheckResult, Status
from gates.compliance_review.business_case import binary_metrics, check_kpi, compare_champion
from gates.compliance_review.lineage import check_lineage

DIGEST = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TODAY = date(2026, 12, 1)


def _manifest() -> dict[str, Any]:
    return {
        "name": "churn",
        "versions": {
            "1.0.0": {
                "artifacts": [{"key": "candidates/churn/1.0.0/model.joblib", "sha256": DIGEST}],
                "datasets": [
                    {"role": "train", "uri": "s3://data/train.parquet", "sha256": "b" * 64},
                    {"role": "eval", "uri": "s3://data/eval.parquet", "sha256": "c" * 64},
                ],
                "lineage": {"code_revision": COMMIT, "training_run": "mlflow:4f2a"},
            }
        },
        "kpi": {"metric": "monthly churn", "baseline": 0.08, "target": 0.06, "owner": "ana",
                "review_date": "2027-03-01"},
    }


def _by_id(checks: list[CheckResult]) -> dict[str, CheckResult]:
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)), ids
    return {c.id: c for c in checks}


def _version(m: dict[str, Any]) -> dict[str, Any]:
    v: dict[str, Any] = m["versions"]["1.0.0"]
    return v


# --------------------------------------------------------------------------- lineage


def test_clean_lineage_passes_every_check() -> None:
    checks = _by_id(check_lineage(_manifest(), "1.0.0"))
    assert set(checks) == {
        "lineage:artifact:candidates/churn/1.0.0/model.joblib",
        "lineage:dataset:train:s3://data/train.parquet",
        "lineage:dataset:eval:s3://data/eval.parquet",
        "lineage:code_revision",
        "lineage:training_run",
    }
    assert all(c.status is Status.PASS for c in checks.values())


@pytest.mark.parametrize("digest", [None, "A" * 64, "a" * 63, "sha256:" + "a" * 64, 42, ["x"], "a" * 10_000_000])
def test_artifact_without_a_valid_digest_fails(digest: Any) -> None:
    m = _manifest()
    _version(m)["artifacts"][0]["sha256"] = digest
    check = _by_id(check_lineage(m, "1.0.0"))["lineage:artifact:candidates/churn/1.0.0/model.joblib"]
    assert check.status is Status.FAIL
    assert "sha256" in check.message
    assert len(check.message) < 500  # a huge value is never echoed whole


@pytest.mark.parametrize(("role", "status"), [("train", Status.FAIL), ("reference", Status.FAIL),
                                              ("eval", Status.WARN), ("production_sample", Status.WARN)])
def test_unpinned_dataset_fails_for_train_and_reference_warns_otherwise(role: str, status: Status) -> None:
    m = _manifest()
    _version(m)["datasets"] = [{"role": role, "uri": "s3://d/x.parquet"}]
    check = _by_id(check_lineage(m, "1.0.0"))[f"lineage:dataset:{role}:s3://d/x.parquet"]
    assert check.status is status
    assert "not pinned" in check.message


def test_dataset_with_bad_digest_or_unknown_role_fails() -> None:
    m = _manifest()
    _version(m)["datasets"] = [{"role": "eval", "uri": "s3://d/e", "sha256": "nope"},
                               {"role": {"x": 1}, "uri": "s3://d/t"}, "not a mapping"]
    checks = _by_id(check_lineage(m, "1.0.0"))
    assert checks["lineage:dataset:eval:s3://d/e"].status is Status.WARN
    assert "not a lower-case hex" in checks["lineage:dataset:eval:s3://d/e"].message
    assert checks["lineage:dataset:#1"].status is Status.FAIL
    assert "unknown role" in checks["lineage:dataset:#1"].message
    assert checks["lineage:dataset:#2"].status is Status.FAIL
    assert "datasets[2] must be a mapping" in checks["lineage:dataset:#2"].message


@pytest.mark.parametrize("revision", [None, "main", COMMIT[:7], COMMIT.upper(), COMMIT + "0", 1234, {"sha": COMMIT},
                                      "f" * 5_000_000])
def test_missing_or_invalid_code_revision_fails(revision: Any) -> None:
    m = _manifest()
    _version(m)["lineage"]["code_revision"] = revision
    check = _by_id(check_lineage(m, "1.0.0"))["lineage:code_revision"]
    assert check.status is Status.FAIL
    assert "lineage.code_revision" in check.message
    assert len(check.message) < 500


@pytest.mark.parametrize("run", [None, "", "   ", 7, ["r"], "r" * 1_000_000])
def test_missing_or_invalid_training_run_fails(run: Any) -> None:
    m = _manifest()
    _version(m)["lineage"]["training_run"] = run
    check = _by_id(check_lineage(m, "1.0.0"))["lineage:training_run"]
    assert check.status is Status.FAIL
    assert "lineage.training_run" in check.message
    assert len(check.message) < 500


@pytest.mark.parametrize("lineage", [None, "abc", [COMMIT]])
def test_missing_lineage_section_fails_both_fields(lineage: Any) -> None:
    m = _manifest()
    if lineage is None:
        del _version(m)["lineage"]
    else:
        _version(m)["lineage"] = lineage
    checks = _by_id(check_lineage(m, "1.0.0"))
    assert checks["lineage:code_revision"].status is Status.FAIL
    assert checks["lineage:training_run"].status is Status.FAIL
    assert "lineage is" in checks["lineage:code_revision"].message


@pytest.mark.parametrize(("manifest", "version"), [
    (None, "1.0.0"), ({}, "1.0.0"), ({"versions": []}, "1.0.0"), ({"versions": {"1.0.0": "x"}}, "1.0.0"),
    ({"versions": {"1.0.0": {}}}, "2.0.0"), ({"versions": {"1.0.0": {}}}, ["1.0.0"]),
])
def test_unreadable_version_is_one_failed_check(manifest: Any, version: Any) -> None:
    checks = check_lineage(manifest, version)
    assert [(c.id, c.status) for c in checks] == [("lineage:version", Status.FAIL)]


def test_hostile_artifact_entries_never_raise() -> None:
    m = _manifest()
    _version(m)["artifacts"] = [None, {"key": "k" * 100_000, "sha256": DIGEST}, {"key": "a", "sha256": DIGEST},
                                {"key": "a", "sha256": DIGEST}]
    _version(m)["datasets"] = {"role": "train"}
    checks = _by_id(check_lineage(m, "1.0.0"))
    assert checks["lineage:artifact:#0"].status is Status.FAIL
    assert checks["lineage:artifact:#1"].status is Status.PASS  # a huge key is not an id
    assert checks["lineage:artifact:a"].status is Status.PASS
    assert checks["lineage:artifact:a#3"].status is Status.PASS  # duplicate names stay distinct
    assert checks["lineage:datasets"].status is Status.FAIL


def test_version_without_artifacts_fails() -> None:
    m = _manifest()
    _version(m)["artifacts"] = []
    assert _by_id(check_lineage(m, "1.0.0"))["lineage:artifacts"].status is Status.FAIL


# --------------------------------------------------------------------------- KPI


def test_complete_kpi_passes() -> None:
    checks = _by_id(check_kpi(_manifest(), today=TODAY))
    assert set(checks) == {"kpi:metric", "kpi:baseline", "kpi:target", "kpi:owner", "kpi:review_date"}
    assert all(c.status is Status.PASS for c in checks.values())


def test_review_date_today_passes_and_yaml_date_accepted() -> None:
    m = _manifest()
    m["kpi"]["review_date"] = TODAY.isoformat()
    assert _by_id(check_kpi(m, today=TODAY))["kpi:review_date"].status is Status.PASS
    m["kpi"]["review_date"] = date(2027, 1, 1)
    assert _by_id(check_kpi(m, today=TODAY))["kpi:review_date"].status is Status.PASS


@pytest.mark.parametrize(("field", "value", "says"), [
    ("metric", None, "kpi.metric is missing"),
    ("metric", "  ", "kpi.metric is not a non-empty string"),
    ("owner", 12, "kpi.owner is not a non-empty string"),
    ("owner", "o" * 100_000, "kpi.owner is longer than"),
    ("baseline", None, "kpi.baseline is missing"),
    ("baseline", "0.1", "kpi.baseline is not a finite number"),
    ("target", float("nan"), "kpi.target is not a finite number"),
    ("target", True, "kpi.target is not a finite number"),
    ("review_date", None, "kpi.review_date is missing"),
    ("review_date", "01/03/2027", "kpi.review_date is not an ISO date"),
    ("review_date", "2027-02-30", "kpi.review_date is not an ISO date"),
    ("review_date", "x" * 1_000_000, "kpi.review_date is not an ISO date"),
    ("review_date", "2026-11-30", "kpi.review_date 2026-11-30 is in the past"),
])
def test_each_kpi_defect_named(field: str, value: Any, says: str) -> None:
    m = _manifest()
    if value is None:
        del m["kpi"][field]
    else:
        m["kpi"][field] = value
    checks = _by_id(check_kpi(m, today=TODAY))
    assert checks[f"kpi:{field}"].status is Status.FAIL
    assert says in checks[f"kpi:{field}"].message
    assert len(checks[f"kpi:{field}"].message) < 500
    others = [c for c in checks.values() if c.id != f"kpi:{field}"]
    assert all(c.status is Status.PASS for c in others)


@pytest.mark.parametrize("kpi", [None, "churn", [1, 2]])
def test_missing_kpi_fails(kpi: Any) -> None:
    m = _manifest()
    if kpi is None:
        del m["kpi"]
    else:
        m["kpi"] = kpi
    assert [(c.id, c.status) for c in check_kpi(m, today=TODAY)] == [("kpi", Status.FAIL)]


# --------------------------------------------------------------------------- champion / challenger


@pytest.mark.parametrize(("challenger", "status"), [(0.75, Status.PASS), (0.7499, Status.FAIL), (0.90, Status.PASS),
                                                    (0.80, Status.PASS)])
def test_higher_is_better_absolute_tolerance_edge(challenger: float, status: Status) -> None:
    [check] = compare_champion({"auc": challenger}, {"auc": 0.80}, {"auc": ("higher", 0.05, 0.0)})
    assert check.id == "business:champion:auc"
    assert check.status is status
    assert f"{challenger:.6g}" in check.message and "0.8" in check.message and "tolerance 0.05" in check.message


@pytest.mark.parametrize(("challenger", "status"), [(0.22, Status.PASS), (0.2201, Status.FAIL), (0.1, Status.PASS)])
def test_lower_is_better_relative_tolerance_edge(challenger: float, status: Status) -> None:
    # rel 10% of champion 0.20 = 0.02 > abs 0.01: the allowed worsening is 0.02
    [check] = compare_champion({"ece": challenger}, {"ece": 0.20}, {"ece": ("lower", 0.01, 0.10)})
    assert check.status is status
    assert check.threshold["tolerance"] == pytest.approx(0.02)


def test_absolute_tolerance_wins_when_larger() -> None:
    rules = {"recall": ("higher", 0.05, 0.01)}
    assert compare_champion({"recall": 0.45}, {"recall": 0.5}, rules)[0].status is Status.PASS
    assert compare_champion({"recall": 0.449}, {"recall": 0.5}, rules)[0].status is Status.FAIL


def test_zero_tolerance_exactly_equal_passes_any_worse_fails() -> None:
    rules = {"precision": ("higher", 0.0, 0.0)}
    assert compare_champion({"precision": 0.6}, {"precision": 0.6}, rules)[0].status is Status.PASS
    assert compare_champion({"precision": 0.6 - 1e-9}, {"precision": 0.6}, rules)[0].status is Status.FAIL


def test_no_champion_is_skipped_with_why() -> None:
    checks = compare_champion({"auc": 0.5}, None, {"auc": ("higher", 0.0, 0.0), "ece": ("lower", 0.0, 0.0)})
    assert [c.status for c in checks] == [Status.SKIPPED, Status.SKIPPED]
    assert all("no champion" in c.message for c in checks)


def test_missing_values_and_bad_rules() -> None:
    checks = _by_id(compare_champion(
        {"auc": 0.8, "ece": float("nan"), "f1": 0.5},
        {"auc": 0.8, "ece": 0.1, "recall": 0.3},
        {"auc": ("up", 0.0, 0.0), "ece": ("lower", 0.0, 0.0), "recall": ("higher", 0.0, 0.0),
         "f1": ("higher", 0.0, 0.0), "precision": ("higher", -0.1, 0.0)}))
    assert checks["business:champion:auc"].status is Status.ERROR and "direction" in checks[
        "business:champion:auc"].message
    assert checks["business:champion:ece"].status is Status.ERROR
    assert checks["business:champion:recall"].status is Status.ERROR  # the challenger lacks it
    assert checks["business:champion:f1"].status is Status.SKIPPED  # the champion lacks it
    assert checks["business:champion:precision"].status is Status.ERROR


# --------------------------------------------------------------------------- metrics


def _tied_data(seed: int, n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # scores rounded to 2 decimals: many ties, within and across classes
    score = np.clip(np.round(0.3 * y + rng.normal(0.35, 0.2, n), 2), 0.0, 1.0)
    return y, score


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.5, 0.35, 0.0])
def test_auc_precision_recall_equal_sklearn_with_ties(seed: int, threshold: float) -> None:
    y, score = _tied_data(seed)
    assert len(np.unique(score)) < len(score) // 10  # ties are real
    got = binary_metrics(y, score, threshold)
    predicted = (score >= threshold).astype(int)
    assert got["auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12, rel=0)
    assert got["precision"] == pytest.approx(precision_score(y, predicted, zero_division=0), abs=1e-12, rel=0)
    assert got["recall"] == pytest.approx(recall_score(y, predicted, zero_division=0), abs=1e-12, rel=0)


def test_auc_all_tied_is_one_half_and_small_case_by_hand() -> None:
    assert binary_metrics([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 0.5)["auc"] == 0.5
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4, 0.4>0.1) = 3.5 / 4
    got = binary_metrics([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1], 0.4)
    assert got["auc"] == 0.875
    assert roc_auc_score([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == 0.875
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == 1.0


def test_single_class_auc_none_and_no_predicted_positive_precision_zero() -> None:
    got = binary_metrics([1, 1, 1], [0.1, 0.2, 0.3], 0.9)
    assert got["auc"] is None
    assert got["precision"] == 0.0 and got["predicted_positive"] == 0
    assert got["recall"] == 0.0


def test_ece_by_hand_and_reference_loop() -> None:
    # bin 0: scores 0.05, 0.05 labels 0,1 → |0.5-0.05| · 2/4; bin 9: scores 0.95, 1.0 labels 1,1 → |1-0.975| · 2/4
    got = binary_metrics([0, 1, 1, 1], [0.05, 0.05, 0.95, 1.0], 0.5)
    assert got["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.025, abs=1e-15)
    y, score = _tied_data(3)
    ece = 0.0
    for k in range(10):
        lo, hi = k / 10, (k + 1) / 10
        inside = (score >= lo) & ((score < hi) if k < 9 else (score <= hi))
        if inside.any():
            ece += inside.sum() / len(y) * abs(y[inside].mean() - score[inside].mean())
    assert binary_metrics(y, score, 0.5)["ece"] == pytest.approx(ece, abs=1e-12)


def test_perfectly_calibrated_bins_have_zero_ece_and_out_of_range_scores_none() -> None:
    assert binary_metrics([0, 1], [0.5, 0.5], 0.5)["ece"] == pytest.approx(0.0)
    assert binary_metrics([0, 1], [-0.2, 1.5], 0.5)["ece"] is None


@pytest.mark.parametrize(("y", "s"), [([], []), ([0, 2], [0.1, 0.2]), ([0, 1], [0.1]), ([0, 1], [0.1, np.nan])])
def test_bad_inputs_raise(y: Any, s: Any) -> None:
    with pytest.raises(ValueError):
        binary_metrics(y, s, 0.5)


def test_manifest_fixture_is_not_mutated_between_checks() -> None:
    m = _manifest()
    before = copy.deepcopy(m)
    check_lineage(m, "1.0.0")
    check_kpi(m, today=TODAY)
    assert m == before

"""Fairness metrics of the compliance_review gate, checked against Fairlearn on data with planted disparities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from gates.base import Status
from gates.compliance_review.fairness import (
    NULL_GROUP,
    FairnessThresholds,
    Limits,
    compute_fairness,
    fairness_from_table,
    judge_fairness,
)

TOL = 1e-9
RATES = {"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate}


def planted(n: int = 6000, seed: int = 7) -> pd.DataFrame:
    """Imbalanced groups with known disparities; race group "E" has no positive label at all."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=n, p=[0.3, 0.7])
    race = rng.choice(["A", "B", "C", "D", "E"], size=n, p=[0.55, 0.25, 0.12, 0.06, 0.02])
    age = rng.choice([25, 40, 60], size=n, p=[0.2, 0.5, 0.3])
    base = {"A": 0.4, "B": 0.3, "C": 0.5, "D": 0.2, "E": 0.0}
    y_true = (rng.random(n) < np.vectorize(base.get)(race)).astype(int)
    # The model favours M and older people: higher hit rate on positives, more false alarms too.
    hit = np.where(sex == "M", 0.85, 0.65) - np.where(age == 25, 0.1, 0.0)
    alarm = np.where(sex == "M", 0.15, 0.08) + np.where(age == 60, 0.05, 0.0)
    y_pred = np.where(y_true == 1, rng.random(n) < hit, rng.random(n) < alarm).astype(int)
    score = np.clip(y_pred * 0.6 + rng.random(n) * 0.4, 0, 1)
    return pd.DataFrame({"y_true": y_true, "y_pred": y_pred, "score": score, "sex": sex, "race": race, "age": age})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return planted()


def ours(df: pd.DataFrame, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("min_group_size", 1)
    return compute_fairness(df["y_true"].to_numpy(), df["y_pred"].to_numpy(),
                            {c: df[c].to_numpy() for c in ("sex", "race", "age")},
                            score=df["score"].to_numpy(), **kwargs)


@pytest.mark.parametrize("attribute", ["sex", "race", "age"])
def test_group_rates_equal_fairlearns(data: pd.DataFrame, attribute: str) -> None:
    mf = MetricFrame(metrics=RATES, y_true=data["y_true"], y_pred=data["y_pred"], sensitive_features=data[attribute])
    result = ours(data).attribute(attribute)
    assert {g.name for g in result.groups} == {str(k) for k in mf.by_group.index}
    for value, row in mf.by_group.iterrows():
        group = next(g for g in result.groups if g.name == str(value))
        for metric in RATES:
            assert getattr(group, metric) == pytest.approx(row[metric], abs=TOL), (value, metric)
        assert group.size == int((data[attribute] == value).sum())
        assert group.mean_score == pytest.approx(data.loc[data[attribute] == value, "score"].mean(), abs=TOL)


@pytest.mark.parametrize("attribute", ["sex", "race", "age"])
def test_summary_metrics_equal_fairlearns(data: pd.DataFrame, attribute: str) -> None:
    args = (data["y_true"], data["y_pred"])
    sf = data[attribute]
    result = ours(data).attribute(attribute)
    assert result.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(*args, sensitive_features=sf), abs=TOL)
    assert result.demographic_parity_ratio == pytest.approx(
        demographic_parity_ratio(*args, sensitive_features=sf), abs=TOL)
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(*args, sensitive_features=sf), abs=TOL)
    assert result.equalized_odds_ratio == pytest.approx(
        equalized_odds_ratio(*args, sensitive_features=sf), abs=TOL)


def test_the_planted_disparity_shows_and_its_groups_are_named(data: pd.DataFrame) -> None:
    sex = ours(data).attribute("sex")
    assert sex.selection_rate is not None and sex.tpr is not None
    assert (sex.selection_rate.min_group, sex.selection_rate.max_group) == ("F", "M")
    assert (sex.tpr.min_group, sex.tpr.max_group) == ("F", "M")
    assert 0.12 < sex.tpr.difference < 0.28  # planted 0.2


def test_a_group_without_positives_has_fairlearns_tpr_of_zero(data: pd.DataFrame) -> None:
    rows = data[data["race"] == "E"]
    assert rows["y_true"].sum() == 0 and len(rows) > 0
    fairlearn_tpr = true_positive_rate(rows["y_true"], rows["y_pred"])
    group = next(g for g in ours(data).attribute("race").groups if g.name == "E")
    assert group.positives == 0 and group.negatives == len(rows)
    assert fairlearn_tpr == 0.0 and group.tpr == 0.0
    # ... so it is the lowest TPR, and drives the equalized odds difference to the largest TPR.
    race = ours(data).attribute("race")
    assert race.tpr is not None and race.tpr.min_group == "E"


def test_intersections_equal_fairlearn_with_two_sensitive_columns(data: pd.DataFrame) -> None:
    sf = data[["sex", "age"]]
    mf = MetricFrame(metrics=RATES, y_true=data["y_true"], y_pred=data["y_pred"], sensitive_features=sf)
    result = ours(data, intersections=[("sex", "age")]).attribute("sex&age")
    assert result.columns == ("sex", "age")
    assert {g.values for g in result.groups} == {(str(a), str(b)) for a, b in mf.by_group.index}
    for (a, b), row in mf.by_group.iterrows():
        group = next(g for g in result.groups if g.values == (str(a), str(b)))
        assert group.name == f"{a} & {b}"
        for metric in RATES:
            assert getattr(group, metric) == pytest.approx(row[metric], abs=TOL)
    args = (data["y_true"], data["y_pred"])
    assert result.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(*args, sensitive_features=sf), abs=TOL)
    assert result.demographic_parity_ratio == pytest.approx(
        demographic_parity_ratio(*args, sensitive_features=sf), abs=TOL)
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(*args, sensitive_features=sf), abs=TOL)
    assert result.equalized_odds_ratio == pytest.approx(
        equalized_odds_ratio(*args, sensitive_features=sf), abs=TOL)


def test_too_small_groups_are_listed_and_left_out_of_the_comparison(data: pd.DataFrame) -> None:
    race = ours(data, min_group_size=200).attribute("race")
    small = {g.name: g.size for g in race.too_small}
    assert set(small) == {"E"}  # 2% of 6000 rows; D (6%) is judged
    assert {g.name for g in race.groups} == {"A", "B", "C", "D", "E"}  # listed, not dropped
    judged_rows = data[~data["race"].isin(small)]
    args = (judged_rows["y_true"], judged_rows["y_pred"])
    assert race.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(*args, sensitive_features=judged_rows["race"]), abs=TOL)
    assert race.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(*args, sensitive_features=judged_rows["race"]), abs=TOL)
    assert race.tpr is not None and race.tpr.min_group != "E"
    messages = [c.message for c in judge_fairness(ours(data, min_group_size=200)) if c.id.startswith("fairness:race:")]
    assert messages and all("too small to judge" in m and f"E ({small['E']})" in m for m in messages)


def test_nulls_form_their_own_group() -> None:
    y_true = np.array([1, 0, 1, 0, 1, 0, 1, 1])
    y_pred = np.array([1, 0, 0, 1, 1, 1, 0, 1])
    region = np.array(["n", None, "s", "n", None, "s", "n", np.nan], dtype=object)
    result = compute_fairness(y_true, y_pred, {"region": region}, min_group_size=1).attribute("region")
    assert [g.name for g in result.groups] == sorted(["n", "s", NULL_GROUP])
    null = next(g for g in result.groups if g.name == NULL_GROUP)
    assert null.size == 3
    filled = pd.Series(region).where(pd.Series(region).notna(), NULL_GROUP)
    assert result.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=filled), abs=TOL)
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=filled), abs=TOL)
    arrow = compute_fairness(y_true, y_pred, {"region": pa.array(["n", None, "s", "n", None, "s", "n", None])},
                             min_group_size=1).attribute("region")
    assert arrow == result
    # NaN in an Arrow float column (not null to Arrow) is a null group too
    floats = pa.array([1.0, float("nan"), 2.0, 1.0, None, 2.0, 1.0, float("nan")])
    by_float = compute_fairness(y_true, y_pred, {"f": floats}, min_group_size=1).attribute("f")
    assert {g.name: g.size for g in by_float.groups}[NULL_GROUP] == 3
    assert len(by_float.groups) == 3
    # a real value spelled "<null>" shares the null group (documented), it does not make a second one
    spelled = compute_fairness(y_true, y_pred, {"s": ["<null>", None, "a", "a", "b", "b", "a", "<null>"]},
                               min_group_size=1).attribute("s")
    assert [(g.name, g.size) for g in spelled.groups] == [(NULL_GROUP, 3), ("a", 3), ("b", 2)]


def test_equalized_odds_difference_is_the_fpr_difference_when_that_is_larger() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    site = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2])
    y_true = (rng.random(n) < 0.4).astype(int)
    alarm = np.select([site == "x", site == "y"], [0.05, 0.2], 0.45)
    y_pred = np.where(y_true == 1, rng.random(n) < 0.8, rng.random(n) < alarm).astype(int)
    result = compute_fairness(y_true, y_pred, {"site": site}, min_group_size=1).attribute("site")
    assert result.fpr is not None and result.tpr is not None and result.fpr.difference > result.tpr.difference
    assert result.equalized_odds_driver is result.fpr
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=site), abs=TOL)
    assert result.equalized_odds_ratio == pytest.approx(
        equalized_odds_ratio(y_true, y_pred, sensitive_features=site), abs=TOL)
    check = next(c for c in judge_fairness(compute_fairness(y_true, y_pred, {"site": site}))
                 if c.id == "fairness:site:equalized_odds_difference")
    assert check.status is Status.FAIL and "fpr lowest in x" in check.message and "highest in z" in check.message


def test_an_arrow_table_gives_the_same_result_as_arrays(data: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(data, preserve_index=False)
    table = table.set_column(table.column_names.index("sex"), "sex", table.column("sex").dictionary_encode())
    from_table = fairness_from_table(table, label="y_true", prediction="y_pred", attributes=["sex", "race", "age"],
                                     score="score", min_group_size=1, intersections=[("sex", "race")])
    assert from_table == ours(data, intersections=[("sex", "race")])
    with pytest.raises(ValueError, match="lacks column"):
        fairness_from_table(table, label="y_true", prediction="nope", attributes=["sex"])


def two_groups(rate_a: float, rate_b: float, size: int = 100, size_b: int | None = None):  # type: ignore[no-untyped-def]
    """Groups a and b, half positive each; predictions select ``rate`` of each group, TPR = 2*rate capped."""
    size_b = size if size_b is None else size_b

    def group(rate: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        y_true = np.array([1] * (n // 2) + [0] * (n - n // 2))
        y_pred = np.zeros(n, dtype=int)
        y_pred[: round(rate * n)] = 1  # all selected rows are positives while rate <= 0.5
        return y_true, y_pred

    ta, pa_ = group(rate_a, size)
    tb, pb = group(rate_b, size_b)
    attr = np.array(["a"] * size + ["b"] * size_b)
    return compute_fairness(np.concatenate([ta, tb]), np.concatenate([pa_, pb]), {"g": attr}, min_group_size=30)


@pytest.mark.parametrize(("rate_b", "status"), [(0.5, Status.PASS), (0.45, Status.PASS), (0.35, Status.WARN),
                                                 (0.25, Status.FAIL)])
def test_demographic_parity_difference_is_judged_at_the_levels(rate_b: float, status: Status) -> None:
    thresholds = FairnessThresholds(demographic_parity_difference=Limits(warn=0.1, fail=0.2),
                                    equalized_odds_difference=Limits(), demographic_parity_ratio=Limits())
    checks = judge_fairness(two_groups(0.5, rate_b), thresholds)
    assert [c.id for c in checks] == ["fairness:g:demographic_parity_difference"]
    assert checks[0].status is status
    assert checks[0].observed == pytest.approx(0.5 - rate_b, abs=TOL)
    if status is not Status.PASS:
        assert "lowest in b" in checks[0].message and "highest in a" in checks[0].message


@pytest.mark.parametrize(("rate_b", "status"), [(0.45, Status.PASS), (0.35, Status.WARN), (0.2, Status.FAIL)])
def test_minimum_ratios_are_judged_at_the_levels(rate_b: float, status: Status) -> None:
    thresholds = FairnessThresholds(demographic_parity_difference=Limits(), equalized_odds_difference=Limits(),
                                    demographic_parity_ratio=Limits(warn=0.8, fail=0.5),
                                    equalized_odds_ratio=Limits(warn=0.8, fail=0.5))
    checks = {c.id: c for c in judge_fairness(two_groups(0.5, rate_b), thresholds)}
    assert set(checks) == {"fairness:g:demographic_parity_ratio", "fairness:g:equalized_odds_ratio"}
    dp = checks["fairness:g:demographic_parity_ratio"]
    assert dp.status is status and dp.observed == pytest.approx(rate_b / 0.5, abs=TOL)
    # TPR ratio equals the selection ratio here; FPR is 0 everywhere, so its ratio is undefined and ignored
    assert checks["fairness:g:equalized_odds_ratio"].status is status


def test_equalized_odds_difference_fails_and_names_the_rate_and_groups() -> None:
    checks = {c.id: c for c in judge_fairness(two_groups(0.5, 0.25))}
    eo = checks["fairness:g:equalized_odds_difference"]
    assert eo.status is Status.FAIL and eo.observed == pytest.approx(0.5, abs=TOL)  # TPR 1.0 vs 0.5
    assert "tpr lowest in b" in eo.message and "highest in a" in eo.message


@pytest.mark.parametrize(("size_b", "expect"), [(10, "only a has"), (None, "no group has")])
def test_error_when_groups_are_too_small_to_compare(size_b: int | None, expect: str) -> None:
    result = two_groups(0.5, 0.5, size=20 if size_b is None else 100, size_b=10)
    checks = judge_fairness(result)
    assert checks and all(c.status is Status.ERROR for c in checks)
    assert all(expect in c.message and "b (10)" in c.message for c in checks)


def test_intersection_check_ids(data: pd.DataFrame) -> None:
    ids = {c.id for c in judge_fairness(ours(data, min_group_size=30, intersections=[("sex", "race")]))}
    assert "fairness:sex&race:equalized_odds_difference" in ids and "fairness:age:demographic_parity_ratio" in ids


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(y_true=[0, 2], y_pred=[0, 1], attributes={"g": ["a", "b"]}), "only 0 and 1"),
    (dict(y_true=[0, 1], y_pred=[0, 1, 1], attributes={"g": ["a", "b"]}), "rows"),
    (dict(y_true=[0, 1], y_pred=[0, 1], attributes={"g": ["a"]}), "attribute 'g'"),
    (dict(y_true=pa.array([0, None]), y_pred=[0, 1], attributes={"g": ["a", "b"]}), "null"),
    (dict(y_true=[0, 1], y_pred=[0, 1], attributes={}), "no protected attribute"),
    (dict(y_true=[0, 1], y_pred=[0, 1], attributes={"g": ["a", "b"]}, intersections=[("g", "h")]), "'h'"),
])
def test_bad_inputs_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_fairness(kwargs.pop("y_true"), kwargs.pop("y_pred"), kwargs.pop("attributes"), min_group_size=1,
                         **kwargs)

"""The compliance_review gate end to end on small Parquet files: every concern, its crash isolation, no raw PII."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gates.base import GateInputs, GateResult, Status, get_gate, parse_gate_config, registered_gates, run_gate
from gates.compliance_review.business_case import binary_metrics
from gates.compliance_review.config import ComplianceReviewConfig, ReadinessFactor
from gates.compliance_review.evidence import TABLE_NAME
from gates.compliance_review.fairness import fairness_from_table
from gates.compliance_review.gate import ComplianceReviewGate
from gates.data_check.models import DatasetLocator

COMMIT = "0123456789abcdef0123456789abcdef01234567"
NOW = "2026-12-01T12:00:00+00:00"
FACTORS = list(ReadinessFactor.__args__)  # type: ignore[attr-defined]
EMAILS = [f"customer{i}.private@example-mail.com" for i in range(60)]

CARD = {
    "intended_use": "Rank customers by churn risk for the retention team's weekly outreach.",
    "out_of_scope": "Pricing decisions, credit decisions or any automated refusal of service.",
    "training_data": "Twelve months of anonymised subscription events, pinned by sha256 in the manifest.",
    "evaluation": "Held-out quarter; AUC, precision and recall at 0.5, calibration error and fairness.",
    "limitations": "Degrades for customers with under three months of tenure; not validated outside the EU.",
    "ethical_considerations": "Protected attributes are used only to measure fairness, never as features.",
    "owner_contact": "dana@example.com",
    "risk_tier": "high",
    "regulatory_tags": "gdpr",
}

REGULATORY_MAP = {
    "controls": {
        "gdpr-art-5-minimisation": {"title": "Personal data declared with a lawful basis and retention",
                                    "evidence": ["check:personal_data"]},
        "gdpr-art-30-records": {"title": "Records of processing: an accountable owner and monitoring",
                                "evidence": ["manifest:kpi.owner", "manifest:operations.monitoring"]},
        "eu-ai-act-art-10-data-governance": {"title": "Data governance",
                                             "evidence": ["gate:data_check", "model_card:training_data"]},
        "fairness-measured": {"title": "Fairness measured", "evidence": ["check:fairness"]},
    },
    "tags": {"gdpr": ["gdpr-art-5-minimisation", "gdpr-art-30-records"],
             "eu-ai-act-high-risk": ["eu-ai-act-art-10-data-governance", "fairness-measured"]},
}


# --------------------------------------------------------------------------- data


def _predictions(disparity: float = 0.0) -> pa.Table:
    """The same 40-row block for every (gender, age_band) group, so that every rate is equal; ``disparity``
    turns that share of group F's predicted negatives into positives."""
    block_label = np.array([1] * 16 + [0] * 24)
    block_score = np.concatenate([np.linspace(0.35, 0.95, 16), np.linspace(0.05, 0.65, 24)])
    cols: dict[str, list[Any]] = {"churned": [], "predicted": [], "score": [], "gender": [], "age_band": []}
    for gender in ("F", "M"):
        for band in ("18-34", "35-54", "55+"):
            score = block_score.copy()
            if gender == "F" and disparity:
                low = np.flatnonzero(score < 0.5)
                score[low[: int(len(low) * disparity)]] += 0.5
                score = np.minimum(score, 0.99)
            cols["churned"] += block_label.tolist()
            cols["score"] += score.tolist()
            cols["predicted"] += (score >= 0.5).astype(int).tolist()
            cols["gender"] += [gender] * 40
            cols["age_band"] += [band] * 40
    return pa.table(cols)


def _train(emails: bool = False) -> pa.Table:
    n = 60
    cols: dict[str, Any] = {"tenure_months": list(range(n)), "plan": ["basic", "pro", "team"] * (n // 3),
                            "monthly_spend": [10.5 + i for i in range(n)]}
    if emails:
        cols["email"] = EMAILS
    return pa.table(cols)


def _write(tmp: Path, name: str, table: pa.Table) -> str:
    path = tmp / f"{name}.parquet"
    pq.write_table(table, path)
    return str(path)


def _manifest() -> dict[str, Any]:
    return {
        "name": "churn-classifier", "owner": "dana", "risk_tier": "high",
        "intended_use": "Weekly churn-risk ranking for the retention team.",
        "sponsor": "Maria Lopez, VP Customer Success",
        "serving_endpoint": "https://models.example.com/churn",
        "regulatory_tags": ["gdpr"],
        "kpi": {"metric": "monthly_churn_rate", "baseline": 0.042, "target": 0.036, "owner": "dana",
                "review_date": "2027-06-30"},
        "operations": {"consumers": ["retention-dialer"], "runbook": "https://wiki.example.com/churn/runbook",
                       "on_call": "ml-platform-oncall", "monitoring": "https://grafana.example.com/d/churn",
                       "ci": "https://ci.example.com/churn-classifier"},
        "personal_data": {},
        "model_card": dict(CARD),
        "versions": {"1.0.0": {
            "artifacts": [{"key": "candidates/churn-classifier/1.0.0/model.joblib", "sha256": "a" * 64}],
            "datasets": [{"role": "train", "uri": "s3://data/train.parquet", "sha256": "b" * 64},
                         {"role": "predictions", "uri": "s3://data/predictions.parquet", "sha256": "c" * 64}],
            "lineage": {"code_revision": COMMIT, "training_run": "prefect:flow-run-42"},
            "evaluation": {"label": "churned", "prediction": "predicted", "score": "score", "threshold": 0.5,
                           "protected_attributes": ["gender", "age_band"]},
        }},
    }


def _inputs(tmp: Path, *, manifest: dict[str, Any] | None = None, train: pa.Table | None = None,
            predictions: pa.Table | None = None, predictions_path: str | None = None,
            **extra: Any) -> GateInputs:
    train_path = _write(tmp, "train", train if train is not None else _train())
    pred_path = predictions_path or _write(tmp, "predictions", predictions if predictions is not None
                                           else _predictions())
    datasets: dict[str, Any] = {
        "train": DatasetLocator(role="train", uri="s3://data/train.parquet", files=[train_path], sha256="b" * 64),
        # as JSON, the way a recorded run hands it back
        "predictions": {"role": "predictions", "uri": "s3://data/predictions.parquet", "files": [pred_path],
                        "sha256": "c" * 64},
    }
    base: dict[str, Any] = {
        "now": NOW, "evidence_dir": str(tmp / "evidence"), "champion": None,
        "earlier_gates": {"data_check": {"status": "pass", "message": "", "blocking": True},
                          "security_scan": {"status": "pass", "message": "", "blocking": True}},
        "regulatory_map": copy.deepcopy(REGULATORY_MAP), "regulatory_tags": [],
    }
    return GateInputs(model="churn-classifier", version="1.0.0", manifest=manifest or _manifest(),
                      datasets=datasets, extra=base | extra)


def _run(inputs: GateInputs, config: dict[str, Any] | None = None) -> GateResult:
    return ComplianceReviewGate().evaluate(inputs, ComplianceReviewConfig.model_validate(config or {}))


def _by_id(result: GateResult) -> dict[str, Any]:
    return {c.id: c for c in result.checks}


def _evidence(result: GateResult) -> dict[str, Any]:
    uri = result.evidence[0].uri
    assert uri is not None and uri.startswith("file://")
    return json.loads(Path(uri.removeprefix("file://")).read_text())


# --------------------------------------------------------------------------- tests


def test_registered_with_its_config_model() -> None:
    assert registered_gates()["compliance_review"] is ComplianceReviewGate
    assert isinstance(parse_gate_config("compliance_review", {}), ComplianceReviewConfig)
    assert get_gate("compliance_review").version == "1.0.0"


def test_config_defaults_validate_and_levels_in_order() -> None:
    config = ComplianceReviewConfig()
    assert ComplianceReviewConfig.model_validate(config.model_dump(mode="json")) == config
    with pytest.raises(ValueError, match="warn"):
        ComplianceReviewConfig.model_validate(
            {"fairness": {"demographic_parity_difference": {"warn": 0.3, "fail": 0.2}}})


def test_clean_complete_candidate_warns_only_on_the_cost_model(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path))
    problems = [(c.id, c.status.value) for c in result.problems()]
    assert problems == [("readiness:cost_model", "warn")], [c.message for c in result.problems()]
    assert result.status is Status.WARN
    ids = [c.id for c in result.checks]
    assert ids[-len(FACTORS):] == [f"readiness:{f}" for f in FACTORS]
    # the concerns in the order of the contract
    order = ["model_card", "fairness:", "personal_data", "lineage:", "kpi:", "business:metrics",
             "business:champion:", "regulatory:", "readiness:"]
    firsts = [next(i for i, cid in enumerate(ids) if cid.startswith(p)) for p in order]
    assert firsts == sorted(firsts)
    checks = _by_id(result)
    assert checks["readiness:data_readiness"].observed == "data_check pass"
    assert checks["readiness:cost_model"].message.startswith("Cost model: missing — ")
    assert checks["business:champion:auc"].status is Status.SKIPPED
    assert checks["regulatory:gdpr:gdpr-art-5-minimisation"].status is Status.PASS
    assert result.metrics["readiness.present"] == len(FACTORS) - 1
    assert result.metrics["readiness.missing"] == 1
    assert result.metrics["personal_data.columns_flagged"] == 0
    assert result.input_digests == {"dataset:train": "b" * 64, "dataset:predictions": "c" * 64}
    for name in ("auc", "precision", "recall", "ece"):
        assert f"evaluation.{name}" in result.metrics
    evidence = _evidence(result)
    assert [row["factor"] for row in evidence["scorecard"]] == FACTORS
    assert evidence["regulatory"]["controls"][0]["satisfied_by"]
    assert result.evidence[0].name == TABLE_NAME


def test_metrics_equal_binary_metrics_and_fairness_equal_fairness_from_table(tmp_path: Path) -> None:
    table = _predictions(disparity=0.5)
    result = _run(_inputs(tmp_path, predictions=table))
    expected = fairness_from_table(table, label="churned", prediction="predicted", score="score",
                                   attributes=["gender", "age_band"])
    for attr in expected.attributes:
        for metric in ("demographic_parity_difference", "demographic_parity_ratio",
                       "equalized_odds_difference", "equalized_odds_ratio"):
            value = getattr(attr, metric)
            assert result.metrics[f"fairness.{attr.attribute}.{metric}"] == pytest.approx(value, abs=1e-12)
    checks = _by_id(result)
    dpd = expected.attribute("gender").demographic_parity_difference
    assert dpd is not None and dpd > 0.2
    assert checks["fairness:gender:demographic_parity_difference"].status is Status.FAIL
    assert checks["fairness:age_band:demographic_parity_difference"].status is Status.PASS
    metrics = binary_metrics(np.array(table.column("churned").to_pylist()),
                             np.array(table.column("score").to_pylist()), 0.5)
    assert result.metrics["evaluation.auc"] == pytest.approx(metrics["auc"])
    assert result.metrics["evaluation.ece"] == pytest.approx(metrics["ece"])
    assert checks["readiness:compliance"].status is Status.FAIL


def test_undeclared_emails_fail_with_masked_examples_and_no_raw_value_anywhere(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path, train=_train(emails=True)))
    check = _by_id(result)["personal_data:train:email"]
    assert check.status is Status.FAIL
    assert "undeclared" in check.message and "***@" in check.message
    assert result.status is Status.FAIL
    assert result.metrics["personal_data.columns_flagged"] == 1
    evidence_text = Path(result.evidence[0].uri.removeprefix("file://")).read_text()  # type: ignore[union-attr]
    for text in (result.model_dump_json(), evidence_text):
        assert "***@" in text
        assert not any(email in text for email in EMAILS)
        assert "customer1" not in text and "example-mail" not in text
    rows = [r for r in json.loads(evidence_text)["personal_data"] if r["column"] == "email"]
    assert rows and rows[0]["detections"][0]["examples"]
    # the regulatory control that needs personal data in order fails, and says why
    control = _by_id(result)["regulatory:gdpr:gdpr-art-5-minimisation"]
    assert control.status is Status.FAIL and "personal_data:train:email" in control.message


def test_declared_emails_with_lawful_basis_and_retention_pass(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["personal_data"] = {"email": {"lawful_basis": "contract", "retention": "24 months"}}
    result = _run(_inputs(tmp_path, manifest=manifest, train=_train(emails=True)))
    assert _by_id(result)["personal_data:train:email"].status is Status.PASS
    assert [c.id for c in result.problems()] == ["readiness:cost_model"]


@pytest.mark.parametrize(("delta", "expected"), [(0.05, Status.FAIL), (0.005, Status.PASS)])
def test_champion_better_beyond_the_tolerance_fails_within_passes(tmp_path: Path, delta: float,
                                                                  expected: Status) -> None:
    clean = _run(_inputs(tmp_path))
    auc, ece = clean.metrics["evaluation.auc"], clean.metrics["evaluation.ece"]
    champion = {"version": "0.9.0", "run_id": "r-1", "predictions_sha256": "c" * 64,
                "metrics": {"evaluation.auc": auc + delta, "evaluation.ece": ece}}
    result = _run(_inputs(tmp_path, champion=champion))
    checks = _by_id(result)
    assert checks["business:champion:auc"].status is expected
    assert checks["business:champion:ece"].status is Status.PASS
    assert checks["business:champion:auc"].observed["champion"] == pytest.approx(auc + delta)
    assert "evaluation sets differ" not in checks["business:champion:auc"].message


def test_champion_on_another_evaluation_set_is_compared_and_said(tmp_path: Path) -> None:
    champion = {"version": "0.9.0", "predictions_sha256": "d" * 64, "metrics": {"evaluation.auc": 0.5}}
    check = _by_id(_run(_inputs(tmp_path, champion=champion)))["business:champion:auc"]
    assert check.status is Status.PASS
    assert "evaluation sets differ" in check.message
    assert check.observed["champion_predictions_sha256"] == "d" * 64
    assert check.observed["predictions_sha256"] == "c" * 64


def test_champion_evidence_unreadable_is_an_error(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path, champion={"error": "no compliance_review result in run r-9"}))
    check = _by_id(result)["business:champion"]
    assert check.status is Status.ERROR and "r-9" in check.message


def test_regulatory_control_without_its_evidence_fails(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["operations"]["monitoring"] = None
    result = _run(_inputs(tmp_path, manifest=manifest))
    check = _by_id(result)["regulatory:gdpr:gdpr-art-30-records"]
    assert check.status is Status.FAIL
    assert "manifest:operations.monitoring" in check.message
    assert _by_id(result)["readiness:mlops_foundation"].status is Status.WARN  # missing → the default warn


def test_policy_tags_select_controls_and_a_gate_that_did_not_run_fails_its_control(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path, regulatory_tags=["eu-ai-act-high-risk"], earlier_gates={}))
    checks = _by_id(result)
    control = checks["regulatory:eu-ai-act-high-risk:eu-ai-act-art-10-data-governance"]
    assert control.status is Status.FAIL and "data_check did not run" in control.message
    assert checks["regulatory:eu-ai-act-high-risk:fairness-measured"].status is Status.PASS
    assert checks["readiness:data_readiness"].status is Status.WARN


def test_unknown_tag_is_an_error_naming_it(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path), {"regulatory": {"tags": ["sox-404"]}})
    check = _by_id(result)["regulatory:sox-404"]
    assert check.status is Status.ERROR and "sox-404" in check.message
    assert result.status is Status.ERROR


def test_tags_without_a_mapping_file_are_an_error(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    del inputs.extra["regulatory_map"]
    check = _by_id(_run(inputs))["regulatory"]
    assert check.status is Status.ERROR and "gdpr" in check.message


def test_unreadable_predictions_error_fairness_and_metrics_only(tmp_path: Path) -> None:
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet")
    result = _run(_inputs(tmp_path, predictions_path=str(bad)))
    checks = _by_id(result)
    assert checks["fairness"].status is Status.ERROR and "predictions" in checks["fairness"].message
    assert checks["business:metrics"].status is Status.ERROR
    assert checks["personal_data:predictions"].status is Status.ERROR
    assert checks["personal_data"].status is Status.PASS  # the train dataset was still scanned
    assert checks["model_card"].status is Status.PASS
    assert checks["lineage:code_revision"].status is Status.PASS
    assert checks["business:champion:auc"].status is Status.SKIPPED
    assert checks["readiness:executive_sponsor"].status is Status.PASS


def test_a_crashing_concern_is_one_error_and_the_others_still_report(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import gates.compliance_review.gate as gate_module

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("lineage exploded")

    monkeypatch.setattr(gate_module, "check_lineage", boom)
    result = _run(_inputs(tmp_path))
    checks = _by_id(result)
    assert checks["lineage"].status is Status.ERROR and "lineage exploded" in checks["lineage"].message
    assert not any(cid.startswith("lineage:") for cid in checks)
    assert checks["model_card"].status is Status.PASS
    assert checks["readiness:security"].status is Status.PASS


def test_missing_prediction_columns_are_an_error_naming_them(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path, predictions=_predictions().drop_columns(["gender"])))
    check = _by_id(result)["fairness"]
    assert check.status is Status.ERROR and "'gender'" in check.message
    assert _by_id(result)["business:metrics"].status is Status.PASS


def test_no_evaluation_section_skips_fairness_unless_required(tmp_path: Path) -> None:
    manifest = _manifest()
    del manifest["versions"]["1.0.0"]["evaluation"]
    result = _run(_inputs(tmp_path, manifest=manifest))
    assert _by_id(result)["fairness"].status is Status.SKIPPED
    assert _by_id(result)["business:metrics"].status is Status.SKIPPED
    required = _run(_inputs(tmp_path, manifest=manifest), {"fairness": {"required": True}})
    assert _by_id(required)["fairness"].status is Status.FAIL


def test_lineage_missing_warn_and_kpi_not_required_downgrade_to_warn(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["versions"]["1.0.0"]["lineage"] = {}
    manifest["kpi"]["owner"] = None
    strict = _by_id(_run(_inputs(tmp_path, manifest=manifest)))
    assert strict["lineage:code_revision"].status is Status.FAIL
    assert strict["kpi:owner"].status is Status.FAIL
    lenient = _by_id(_run(_inputs(tmp_path, manifest=manifest),
                          {"lineage": {"missing": "warn"}, "business": {"kpi_required": False}}))
    assert lenient["lineage:code_revision"].status is Status.WARN
    assert lenient["lineage:training_run"].status is Status.WARN
    assert lenient["kpi:owner"].status is Status.WARN


def test_model_card_from_markdown_and_tier_requirements(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["model_card"] = None
    markdown = "\n".join(f"## {name.replace('_', ' ')}\n\n{text}\n" for name, text in CARD.items()
                         if name != "limitations")
    result = _run(_inputs(tmp_path, manifest=manifest, model_card_markdown=markdown))
    checks = _by_id(result)
    assert checks["model_card"].observed == "markdown"
    assert checks["model_card:limitations"].status is Status.FAIL
    manifest["risk_tier"] = "low"
    markdown_low = markdown.replace("high", "low")
    low = _by_id(_run(_inputs(tmp_path, manifest=manifest, model_card_markdown=markdown_low)))
    assert "model_card:limitations" not in low


def test_required_readiness_factor_fails_when_missing(tmp_path: Path) -> None:
    result = _run(_inputs(tmp_path), {"readiness": {"required": ["cost_model"]}})
    assert _by_id(result)["readiness:cost_model"].status is Status.FAIL


def test_preflight_without_earlier_gates_or_champion(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, regulatory_tags=["eu-ai-act-high-risk"])
    for key in ("earlier_gates", "champion"):
        del inputs.extra[key]
    result = run_gate("compliance_review", inputs, {})
    checks = _by_id(result)
    assert checks["regulatory:eu-ai-act-high-risk:eu-ai-act-art-10-data-governance"].status is Status.SKIPPED
    assert checks["business:champion:auc"].status is Status.SKIPPED
    assert "pre-flight" in checks["business:champion:auc"].message
    assert checks["readiness:data_readiness"].status is Status.WARN


def test_a_dataset_the_flow_could_not_locate_is_an_error_of_its_role(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    inputs.datasets["reference"] = {"role": "reference", "uri": "s3://data/ref.parquet", "error": "NoSuchKey",
                                    "error_kind": "not_found"}
    inputs.datasets["future_role"] = {"role": "future_role", "uri": "s3://data/x.parquet",
                                      "files": [str(tmp_path / "train.parquet")]}
    checks = _by_id(_run(inputs))
    assert checks["personal_data:reference"].status is Status.ERROR
    assert "NoSuchKey" in checks["personal_data:reference"].message
    assert checks["personal_data"].observed["columns"] == 3 + 5 + 3  # train, predictions, the unknown role


def test_the_shipped_regulatory_file_validates() -> None:
    import yaml

    from gates.compliance_review.regulatory import RegulatoryMap

    path = Path(__file__).resolve().parents[2] / "configs" / "regulatory.yaml"
    if not path.exists():
        pytest.skip("no configs/regulatory.yaml")
    mapping = RegulatoryMap.model_validate(yaml.safe_load(path.read_text()))
    assert mapping.tags and all(mapping.tags.values())


def test_a_card_file_the_task_could_not_read_is_an_error_saying_why(tmp_path: Path) -> None:
    manifest = _manifest()
    del manifest["model_card"]
    why = "candidates/churn-classifier/1.0.0/MODEL_CARD.md: not UTF-8 text (byte 12)"
    result = _run(_inputs(tmp_path, manifest=manifest, model_card_markdown=None, model_card_error=why))
    card = _by_id(result)["model_card"]
    assert card.status is Status.ERROR and "not UTF-8" in card.message
    # a card in the manifest is read from there: a card file that failed does not matter then
    result = _run(_inputs(tmp_path, model_card_markdown=None, model_card_error=why))
    assert _by_id(result)["model_card"].status is Status.PASS


def test_a_champion_the_gate_never_judged_warns_that_nothing_was_compared(tmp_path: Path) -> None:
    unjudged = {"version": "0.9.0", "run_id": "run-0",
                "unjudged": "the production run run-0 (churn-classifier 0.9.0) has no compliance_review evidence"}
    checks = _by_id(_run(_inputs(tmp_path, champion=unjudged)))
    assert checks["business:champion"].status is Status.WARN
    assert "not compared" in checks["business:champion"].message
    assert not [c for c in checks if c.startswith("business:champion:")]

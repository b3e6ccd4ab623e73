"""``clearance gate run compliance_review``: the pre-flight a data scientist runs before asking for a promotion —
the real manifest (checked like a config file), one of its versions, local datasets in place of the manifest's
URIs, the regulatory mapping and a Markdown model card; exit 0 pass/warn, 1 fail, 2 error or bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clearance.app.cli import app
from gates.base import GateResult, Status
from tasks.preflight import PreflightError, local_gate_inputs
from tests.compliance_kit import (
    MODEL_CARD,
    RAW_EMAIL_DOMAIN,
    REGULATORY,
    manifest,
    predictions_table,
    raw_email,
    train_table,
    write_parquet,
)

runner = CliRunner()


@pytest.fixture
def candidate(tmp_path: Path) -> dict[str, Path]:
    """A config dir (models/churn.yaml, regulatory.yaml) and local copies of the version's datasets."""
    data = tmp_path / "data"
    files = {"predictions": data / "predictions.parquet", "train": data / "train.parquet",
             "train_emails": data / "train-emails.parquet"}
    pins = {"predictions": write_parquet(files["predictions"], predictions_table()),
            "train": write_parquet(files["train"], train_table())}
    write_parquet(files["train_emails"], train_table(emails=True))
    doc = manifest("churn", "2.0.0", artifact_key="candidates/churn/2.0.0/model.joblib", artifact_sha256="a" * 64,
                   datasets={role: (f"candidates/churn/2.0.0/{role}.parquet", sha) for role, sha in pins.items()})
    doc["versions"] = {"1.0.0": doc["versions"]["2.0.0"], **doc["versions"]}  # two versions: the last is taken
    models = tmp_path / "configs" / "models"
    models.mkdir(parents=True)
    files["manifest"] = models / "churn.yaml"
    files["manifest"].write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "configs" / "regulatory.yaml").write_text(yaml.safe_dump(REGULATORY, sort_keys=False))
    return files


def gate_run(*args: str | Path):
    return runner.invoke(app, ["gate", "run", "compliance_review", *map(str, args)])


def test_a_complete_candidate_passes_with_the_json_gate_result(candidate):
    result = gate_run("--manifest", candidate["manifest"], "--dataset", f"predictions={candidate['predictions']}",
                      "--dataset", f"train={candidate['train']}", "--json")
    assert result.exit_code == 0, result.output
    parsed = GateResult.model_validate_json(result.stdout)
    assert parsed.gate_id == "compliance_review" and parsed.status in (Status.PASS, Status.WARN)
    checks = {c.id: c for c in parsed.checks}
    assert "personal_data:train:contact" not in checks and checks["personal_data"].status is Status.PASS
    assert checks["fairness:gender:demographic_parity_difference"].status is Status.PASS
    assert checks["business:metrics"].status is Status.PASS and parsed.metrics["evaluation.auc"] > 0.9
    assert checks["lineage:code_revision"].status is Status.PASS
    # the regulatory mapping next to the manifest's config dir was read
    assert checks["regulatory:gdpr:gdpr-art-5-minimisation"].status is Status.PASS
    # no earlier gates and no champion in a pre-flight: named as such, never a pass or a failure
    assert checks["readiness:data_readiness"].status is Status.WARN
    assert "pre-flight" in checks["readiness:data_readiness"].message
    assert checks["business:champion:auc"].status is Status.SKIPPED
    # the local file was read in place of the manifest's URI (its digest, as the locator observed it)
    local = hashlib.sha256(candidate["predictions"].read_bytes()).hexdigest()
    assert parsed.input_digests["dataset:predictions"] == local
    assert [c.id for c in parsed.checks][-1] == "readiness:cost_model"


def test_undeclared_emails_fail_with_exit_1_and_the_raw_addresses_are_never_printed(candidate):
    for as_json in (True, False):
        args = ["--manifest", candidate["manifest"], "--version", "2.0.0", "--dataset",
                f"predictions={candidate['predictions']}", "--dataset", f"train={candidate['train_emails']}"]
        result = gate_run(*args, *(["--json"] if as_json else []))
        assert result.exit_code == 1, result.output
        assert raw_email(0) not in result.output and RAW_EMAIL_DOMAIN not in result.output
        assert "personal_data:train:contact" in result.stdout
        if as_json:
            checks = {c.id: c for c in GateResult.model_validate_json(result.stdout).checks}
            check = checks["personal_data:train:contact"]
            assert check.status is Status.FAIL and "undeclared" in check.message
            examples = check.observed["detections"][0]["examples"]
            assert examples and all("***" in e for e in examples)


def test_a_broken_manifest_is_exit_2_with_file_and_line(candidate):
    doc = yaml.safe_load(candidate["manifest"].read_text())
    doc["kpi"]["review_date"] = "next spring"
    text = yaml.safe_dump(doc, sort_keys=False)
    candidate["manifest"].write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if "next spring" in row)
    result = gate_run("--manifest", candidate["manifest"], "--dataset", f"predictions={candidate['predictions']}")
    assert result.exit_code == 2, result.output
    assert f"churn.yaml:{line}: kpi.review_date:" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("extra", "expected"), [
    (["--version", "9.9.9"], "--version 9.9.9: "),
    (["--dataset", "eval=PRED"], "has no eval dataset (its roles: predictions, train)"),
    (["--model-card", "missing.md"], "--model-card missing.md: no such file"),
])
def test_bad_pre_flight_input_is_one_line_and_exit_2(candidate, extra, expected):
    extra = [f"eval={candidate['predictions']}" if a == "eval=PRED" else a for a in extra]
    result = gate_run("--manifest", candidate["manifest"], *extra)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], lines
    if "--version" in extra:
        assert "versions: 1.0.0, 2.0.0" in lines[0]


def test_the_markdown_card_and_an_explicit_regulatory_file_reach_the_gate(candidate, tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("\n".join(f"## {name.replace('_', ' ').title()}\n\n{text}\n" for name, text in MODEL_CARD.items()))
    bad = tmp_path / "regulatory.json"
    bad.write_text(json.dumps({"controls": {}, "tags": {"gdpr": ["nope"]}}))
    inputs = local_gate_inputs(manifest=candidate["manifest"], model_card=card,
                               datasets={"predictions": candidate["predictions"]})
    assert inputs.extra["model_card_markdown"].startswith("## Intended Use")
    assert inputs.model == "churn" and inputs.version == "2.0.0"
    assert inputs.extra["regulatory_map"]["tags"]["gdpr"] == ["gdpr-art-5-minimisation", "gdpr-art-30-records"]
    # the train dataset was given no local path and its URI is a bucket key: named, not read
    assert inputs.extra["preflight_unread"] == {"train": "candidates/churn/2.0.0/train.parquet"}
    assert set(inputs.datasets) == {"predictions"}
    with pytest.raises(PreflightError, match="unknown control"):
        local_gate_inputs(manifest=candidate["manifest"], regulatory=bad)


def test_a_non_utf8_or_oversize_card_is_refused(candidate, tmp_path):
    binary = tmp_path / "card.md"
    binary.write_bytes(b"# Card\n\xff")
    with pytest.raises(PreflightError, match="not UTF-8"):
        local_gate_inputs(manifest=candidate["manifest"], model_card=binary)
    big = tmp_path / "big.md"
    big.write_bytes(b"a" * (256 * 1024 + 1))
    with pytest.raises(PreflightError, match="over the 262144-byte limit"):
        local_gate_inputs(manifest=candidate["manifest"], model_card=big)


def test_a_version_card_key_without_a_local_card_is_named(candidate):
    doc = yaml.safe_load(candidate["manifest"].read_text())
    doc["versions"]["2.0.0"]["model_card"] = "candidates/churn/2.0.0/MODEL_CARD.md"
    candidate["manifest"].write_text(yaml.safe_dump(doc, sort_keys=False))
    inputs = local_gate_inputs(manifest=candidate["manifest"])
    assert "give --model-card FILE" in inputs.extra["model_card_error"]
    assert "model_card_markdown" not in inputs.extra


def test_policy_tags_reach_the_gate(candidate, tmp_path):
    policy = tmp_path / "high.yaml"
    policy.write_text(yaml.safe_dump({"tier": "high", "regulatory_tags": ["gdpr"],
                                      "gates": [{"id": "compliance_review", "mode": "blocking"}]}))
    result = gate_run("--manifest", candidate["manifest"], "--dataset", f"predictions={candidate['predictions']}",
                      "--dataset", f"train={candidate['train']}", "--policy", policy, "--json")
    assert result.exit_code == 0, result.output
    assert "regulatory:gdpr:gdpr-art-30-records" in {c.id for c in GateResult.model_validate_json(result.stdout).checks}

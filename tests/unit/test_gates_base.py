"""GateResult aggregation, the registry and the artifact_integrity gate (rendering: test_render_*.py)."""

import hashlib

import pytest

from clearance.render import markdown
from clearance.render.gate import gate_blocks
from gates.artifact_integrity import detect_format
from gates.base import (
    ArtifactObservation,
    CheckResult,
    GateConfigError,
    GateInputs,
    GateResult,
    Status,
    UnknownGateError,
    parse_gate_config,
    registered_gates,
    run_gate,
    worst,
)

PICKLE = b"\x80\x05\x95" + b"x" * 100
SHA = hashlib.sha256(PICKLE).hexdigest()


def check(status: Status) -> CheckResult:
    return CheckResult(id=f"c-{status.value}", status=status)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([Status.PASS, Status.PASS], Status.PASS),
        ([Status.PASS, Status.WARN], Status.WARN),
        ([Status.WARN, Status.FAIL], Status.FAIL),
        ([Status.FAIL, Status.ERROR, Status.PASS], Status.ERROR),
        ([Status.PASS, Status.WAIVED], Status.WAIVED),
        ([], Status.SKIPPED),
    ],
)
def test_worst_status_wins(statuses, expected):
    assert worst(statuses) is expected
    assert GateResult.from_checks("g", "1", [check(s) for s in statuses]).status is expected


def test_error_is_never_a_pass():
    result = GateResult.from_checks("g", "1", [check(Status.ERROR)])
    assert result.stops_promotion
    assert not GateResult.from_checks("g", "1", [check(Status.ERROR)], blocking=False).stops_promotion


def test_markdown_has_a_row_per_check_and_escapes_pipes():
    result = GateResult.from_checks("g", "1", [CheckResult(id="a", status=Status.FAIL, observed="x|y", message="m")])
    text = markdown.render(gate_blocks(result))
    assert "**FAIL**" in text and "| a | fail | x\\|y |" in text


def test_registry_knows_builtins_and_rejects_unknown():
    assert "artifact_integrity" in registered_gates()
    with pytest.raises(UnknownGateError):
        parse_gate_config("nope", {})
    with pytest.raises(GateConfigError, match="allowed_formats"):
        parse_gate_config("artifact_integrity", {"allowed_formats": []})


def inputs(*observations: ArtifactObservation, size: int | None = len(PICKLE), fmt: str | None = None) -> GateInputs:
    ref = {"key": "candidates/m/1/model.joblib", "sha256": SHA, "size": size, "format": fmt}
    manifest = {"versions": {"1": {"artifacts": [ref]}}}
    return GateInputs(model="m", version="1", manifest=manifest, artifacts=list(observations))


def observed(**overrides) -> ArtifactObservation:
    fields = dict(key="candidates/m/1/model.joblib", exists=True, size=len(PICKLE), sha256=SHA, head=PICKLE[:64])
    fields.update(overrides)
    return ArtifactObservation(**fields)


def test_artifact_integrity_passes_on_the_pinned_artifact():
    result = run_gate("artifact_integrity", inputs(observed()), {})
    assert result.status is Status.PASS, result.problems()
    assert result.input_digests == {"candidates/m/1/model.joblib": SHA}


def test_artifact_integrity_fails_on_swapped_content():
    result = run_gate("artifact_integrity", inputs(observed(sha256="b" * 64)), {})
    assert result.status is Status.FAIL
    assert [c.id for c in result.problems()] == ["sha256:candidates/m/1/model.joblib"]


def test_artifact_integrity_fails_on_missing_artifact_and_size():
    assert run_gate("artifact_integrity", inputs(observed(exists=False, error="not found")), {}).status is Status.FAIL
    result = run_gate("artifact_integrity", inputs(observed(size=5)), {})
    assert any(c.id.startswith("size:") for c in result.problems())


def test_unreadable_store_is_an_error_not_a_fail():
    obs = observed(exists=False, error="could not read: EndpointConnectionError")
    assert run_gate("artifact_integrity", inputs(obs), {}).status is Status.ERROR


def test_format_allowlist_and_disguised_format():
    result = run_gate("artifact_integrity", inputs(observed()), {"allowed_formats": ["onnx"]})
    assert result.status is Status.FAIL and "not allowed" in result.problems()[0].message
    zip_head = observed(head=b"PK\x03\x04" + b"\x00" * 60)
    result = run_gate("artifact_integrity", inputs(zip_head, fmt="joblib"), {})
    assert result.status is Status.FAIL and "looks like" in result.problems()[0].message


def test_crashing_gate_becomes_error():
    bad = GateInputs(model="m", version="missing", manifest={"versions": {}})
    result = run_gate("artifact_integrity", bad, {})
    assert result.status is Status.ERROR and "could not decide" in result.message


def test_detect_format():
    assert detect_format("x/model.joblib", PICKLE) == "joblib"
    assert detect_format("x/model.onnx", b"\x08\x07") == "onnx"
    assert detect_format("x/blob", b"PAR1....") == "parquet"

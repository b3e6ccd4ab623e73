"""A manifest may tighten its tier's policy, never loosen it: every rule, both directions."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from clearance.config import ConfigError, PolicyOverrides, effective_policy, load_config_dir, validate_paths
from clearance.config.schema import Channel, GateMode, OnWarn, Policy, TimeoutOutcome
from clearance.config.tighten import fmt_duration
from gates import base as gate_base

REPO = Path(__file__).resolve().parents[2]
SOURCE = "configs/models/churn.yaml"


# --------------------------------------------------------------------------- a gate with every kind of rule


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_missing: float = Field(0.1, json_schema_extra={"tighten": "lower"})


class FakeDriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_rows: int = Field(100, json_schema_extra={"tighten": "higher"})
    max_psi: float | None = Field(0.2, gt=0, json_schema_extra={"tighten": "lower"})
    columns: list[str] = Field(default_factory=lambda: ["age", "plan", "tenure"],
                               json_schema_extra={"tighten": "subset"})
    method: str = "ks"  # no tighten rule: a manifest may not change it
    nested: Inner = Field(default_factory=Inner)


class FakeDriftGate:
    id: ClassVar[str] = "fake_drift"
    version: ClassVar[str] = "0.0.1"
    config_model: ClassVar[type[BaseModel]] = FakeDriftConfig

    def evaluate(self, inputs: Any, config: BaseModel) -> Any:  # pragma: no cover - never run here
        raise NotImplementedError


@pytest.fixture(autouse=True)
def fake_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register ``fake_drift`` for one test only (other tests see the real registry)."""
    gate_base.registered_gates()  # load built-ins first so the fake is added to, not replaced by, them
    monkeypatch.setitem(gate_base._REGISTRY, "fake_drift", FakeDriftGate)


def make_policy(**changes: Any) -> Policy:
    raw: dict[str, Any] = {
        "tier": "high",
        "gates": [
            {"id": "artifact_integrity", "mode": "blocking",
             "config": {"allowed_formats": ["joblib", "onnx", "safetensors"], "max_size_bytes": 1000}},
            {"id": "fake_drift", "mode": "advisory", "config": {"max_psi": 0.2}},
        ],
        "on_warn": "continue",
        "approvals": {"roles": {"security": {"min": 2}, "business": {"min": 1}},
                      "channels": ["cli", "prefect-ui", "slack"], "timeout": "24h", "timeout_outcome": "approve"},
    }
    raw.update(changes)
    return Policy.model_validate(raw)


BASE = make_policy()


def tighten(overrides: dict[str, Any], policy: Policy = BASE) -> Policy:
    return effective_policy(policy, PolicyOverrides.model_validate(overrides), source=SOURCE)


def loosenings(overrides: dict[str, Any], policy: Policy = BASE) -> list[str]:
    with pytest.raises(ConfigError) as info:
        tighten(overrides, policy)
    return [str(issue) for issue in info.value.issues]


def where(field: str) -> str:
    return f"{SOURCE}: policy_overrides.{field}"


def gate_cfg(policy: Policy, gate_id: str) -> dict[str, Any]:
    spec = policy.gate(gate_id)
    assert spec is not None
    return spec.config


# --------------------------------------------------------------------------- gates


def test_no_overrides_is_the_tier_policy() -> None:
    assert tighten({}) == BASE
    assert tighten({"gates": [], "approvals": {}}) == BASE


def test_gates_may_be_added_after_the_policy_gates() -> None:
    policy = make_policy(gates=[{"id": "artifact_integrity"}])
    result = tighten({"gates": [{"id": "fake_drift", "mode": "advisory", "config": {"min_rows": 5}}]}, policy)
    assert [g.id for g in result.gates] == ["artifact_integrity", "fake_drift"]
    assert result.gates[1].mode is GateMode.ADVISORY and result.gates[1].config == {"min_rows": 5}


def test_an_added_gate_still_needs_a_valid_config() -> None:
    policy = make_policy(gates=[{"id": "artifact_integrity"}])
    [message] = loosenings({"gates": [{"id": "fake_drift", "config": {"min_rows": "many"}}]}, policy)
    assert message.startswith(where("gates.0.config") + ": gate fake_drift: min_rows:")


def test_policy_gates_cannot_be_removed() -> None:
    # The override format can only add or tighten: gates the manifest does not mention stay.
    result = tighten({"gates": [{"id": "fake_drift", "mode": "blocking"}]})
    assert [g.id for g in result.gates] == ["artifact_integrity", "fake_drift"]


def test_unknown_or_repeated_override_gates() -> None:
    assert loosenings({"gates": [{"id": "nope"}]}) == [
        where("gates.0.id") + f": unknown gate 'nope' (known: {', '.join(sorted(gate_base.registered_gates()))})"]
    assert loosenings({"gates": [{"id": "fake_drift"}, {"id": "fake_drift"}]}) == [
        where("gates.1.id") + ": gate 'fake_drift' is listed twice"]


def test_mode_advisory_to_blocking_is_tighter() -> None:
    assert tighten({"gates": [{"id": "fake_drift", "mode": "blocking"}]}).gates[1].mode is GateMode.BLOCKING


def test_mode_blocking_to_advisory_is_looser() -> None:
    assert loosenings({"gates": [{"id": "artifact_integrity", "mode": "advisory"}]}) == [
        where("gates.0.mode") + ": advisory is looser than the high tier's blocking"]


def test_unwritten_mode_keeps_the_policy_mode() -> None:
    # GateSpec defaults mode to blocking; a manifest that only tightens config must not flip modes.
    result = tighten({"gates": [{"id": "fake_drift", "config": {"max_psi": 0.1}}]})
    assert result.gates[1].mode is GateMode.ADVISORY
    assert result.gates[1].config == {"max_psi": 0.1}


def test_lower_field_may_decrease() -> None:
    result = tighten({"gates": [{"id": "artifact_integrity", "config": {"max_size_bytes": 500}}]})
    assert gate_cfg(result, "artifact_integrity") == {
        "allowed_formats": ["joblib", "onnx", "safetensors"], "max_size_bytes": 500}


def test_lower_field_may_not_increase_or_be_removed() -> None:
    assert loosenings({"gates": [{"id": "artifact_integrity", "config": {"max_size_bytes": 5000}}]}) == [
        where("gates.0.config.max_size_bytes") + ": 5000 is looser than the high tier's 1000"]
    assert loosenings({"gates": [{"id": "artifact_integrity", "config": {"max_size_bytes": None}}]}) == [
        where("gates.0.config.max_size_bytes") + ": null is looser than the high tier's 1000"]


def test_setting_a_limit_the_tier_leaves_open_is_tighter() -> None:
    policy = make_policy(gates=[{"id": "artifact_integrity"}])
    result = tighten({"gates": [{"id": "artifact_integrity", "config": {"max_size_bytes": 10}}]}, policy)
    assert gate_cfg(result, "artifact_integrity") == {"max_size_bytes": 10}


def test_higher_field_may_increase_not_decrease() -> None:
    assert gate_cfg(tighten({"gates": [{"id": "fake_drift", "config": {"min_rows": 1000}}]}),
                    "fake_drift") == {"max_psi": 0.2, "min_rows": 1000}
    assert loosenings({"gates": [{"id": "fake_drift", "config": {"min_rows": 10}}]}) == [
        where("gates.0.config.min_rows") + ": 10 is looser than the high tier's 100"]


def test_subset_may_lose_items_not_gain_them() -> None:
    result = tighten({"gates": [{"id": "artifact_integrity", "config": {"allowed_formats": ["onnx"]}}]})
    assert gate_cfg(result, "artifact_integrity")["allowed_formats"] == ["onnx"]
    assert loosenings({"gates": [{"id": "artifact_integrity",
                                  "config": {"allowed_formats": ["onnx", "pickle"]}}]}) == [
        where("gates.0.config.allowed_formats") + ": adds [pickle]; the high tier allows only "
                                                  "[joblib, onnx, safetensors]"]


def test_subset_defaults_of_the_gate_count_as_the_tier_list() -> None:
    assert loosenings({"gates": [{"id": "fake_drift", "config": {"columns": ["age", "income"]}}]}) == [
        where("gates.0.config.columns") + ": adds [income]; the high tier allows only [age, plan, tenure]"]
    assert gate_cfg(tighten({"gates": [{"id": "fake_drift", "config": {"columns": ["age"]}}]}),
                    "fake_drift")["columns"] == ["age"]


def test_field_without_rule_cannot_change() -> None:
    assert loosenings({"gates": [{"id": "fake_drift", "config": {"method": "psi"}}]}) == [
        where("gates.0.config.method") + ": cannot be changed by a manifest (no tighten rule); "
                                         "the high tier's value is ks"]
    assert gate_cfg(tighten({"gates": [{"id": "fake_drift", "config": {"method": "ks"}}]}),
                    "fake_drift")["method"] == "ks"


def test_nested_config_follows_its_own_rules() -> None:
    tighter = tighten({"gates": [{"id": "fake_drift", "config": {"nested": {"max_missing": 0.05}}}]})
    assert gate_cfg(tighter, "fake_drift")["nested"] == {"max_missing": 0.05}
    assert loosenings({"gates": [{"id": "fake_drift", "config": {"nested": {"max_missing": 0.5}}}]}) == [
        where("gates.0.config.nested.max_missing") + ": 0.5 is looser than the high tier's 0.1"]


# --------------------------------------------------------------------------- on_warn


def test_on_warn_continue_to_require_approval_is_tighter() -> None:
    assert tighten({"on_warn": "require_approval"}).on_warn is OnWarn.REQUIRE_APPROVAL


def test_on_warn_require_approval_to_continue_is_looser() -> None:
    strict = make_policy(on_warn="require_approval")
    assert loosenings({"on_warn": "continue"}, strict) == [
        where("on_warn") + ": continue is looser than the high tier's require_approval"]
    assert tighten({"on_warn": "require_approval"}, strict).on_warn is OnWarn.REQUIRE_APPROVAL


# --------------------------------------------------------------------------- approvals


def test_roles_may_be_added_and_mins_raised() -> None:
    result = tighten({"approvals": {"roles": {"compliance": {"min": 1}, "security": {"min": 3}}}})
    assert {role: q.min for role, q in result.approvals.roles.items()} == {
        "security": 3, "business": 1, "compliance": 1}


def test_min_may_not_decrease() -> None:
    assert loosenings({"approvals": {"roles": {"security": {"min": 1}}}}) == [
        where("approvals.roles.security.min") + ": 1 is looser than the high tier's 2"]


def test_restating_a_role_without_min_keeps_the_tier_quorum() -> None:
    assert tighten({"approvals": {"roles": {"security": {}}}}).approvals.roles["security"].min == 2


def test_channels_may_only_be_removed() -> None:
    assert tighten({"approvals": {"channels": ["slack"]}}).approvals.channels == [Channel.SLACK]
    assert loosenings({"approvals": {"channels": ["cli", "jira"]}}) == [
        where("approvals.channels") + ": adds [jira]; the high tier allows only [cli, prefect-ui, slack]"]
    assert loosenings({"approvals": {"channels": []}}) == [
        where("approvals.channels") + ": removes every channel, so nobody could approve"]


def test_timeout_may_only_shorten() -> None:
    assert tighten({"approvals": {"timeout": "8h"}}).approvals.timeout.total_seconds() == 8 * 3600
    assert tighten({"approvals": {"timeout": "24h"}}).approvals.timeout == BASE.approvals.timeout
    assert loosenings({"approvals": {"timeout": "48h"}}) == [
        where("approvals.timeout") + ": 48h is looser than the high tier's 24h"]


def test_timeout_outcome_approve_to_reject_only() -> None:
    assert tighten({"approvals": {"timeout_outcome": "reject"}}).approvals.timeout_outcome is TimeoutOutcome.REJECT
    strict = make_policy(approvals={"roles": {"security": {"min": 1}}, "timeout_outcome": "reject"})
    assert loosenings({"approvals": {"timeout_outcome": "approve"}}, strict) == [
        where("approvals.timeout_outcome") + ": approve is looser than the high tier's reject"]


def test_defaults_a_manifest_did_not_write_loosen_nothing() -> None:
    # ApprovalPolicy's defaults (channels [cli, prefect-ui], timeout 24h) would add prefect-ui and
    # lengthen 1h; only what the manifest wrote is compared and applied.
    narrow = make_policy(approvals={"roles": {"security": {"min": 1}}, "channels": ["cli"], "timeout": "1h"})
    result = tighten({"approvals": {"roles": {"business": {"min": 1}}}}, narrow)
    assert result.approvals.channels == [Channel.CLI]
    assert result.approvals.timeout.total_seconds() == 3600
    assert set(result.approvals.roles) == {"security", "business"}


def test_every_loosening_is_reported_together() -> None:
    strict = make_policy(on_warn="require_approval")
    found = loosenings({
        "gates": [{"id": "artifact_integrity", "mode": "advisory", "config": {"max_size_bytes": 2000}}],
        "on_warn": "continue",
        "approvals": {"roles": {"security": {"min": 1}}, "timeout": "2d"},
    }, strict)
    assert found == [
        where("gates.0.mode") + ": advisory is looser than the high tier's blocking",
        where("gates.0.config.max_size_bytes") + ": 2000 is looser than the high tier's 1000",
        where("on_warn") + ": continue is looser than the high tier's require_approval",
        where("approvals.roles.security.min") + ": 1 is looser than the high tier's 2",
        where("approvals.timeout") + ": 48h is looser than the high tier's 24h",
    ]


def test_the_tier_policy_is_not_mutated() -> None:
    before = BASE.model_dump()
    tighten({"gates": [{"id": "artifact_integrity", "config": {"max_size_bytes": 1}}],
             "approvals": {"roles": {"security": {"min": 5}}, "channels": ["cli"]}})
    assert BASE.model_dump() == before


def test_fmt_duration() -> None:
    from datetime import timedelta

    assert [fmt_duration(timedelta(seconds=s)) for s in (30, 1800, 5400, 86400, 172800, 259200, 1209600)] == [
        "30s", "30m", "90m", "24h", "48h", "3d", "14d"]


# --------------------------------------------------------------------------- through the loader, with lines

HIGH = """
# yaml-language-server: $schema=../schemas/policy.schema.json
tier: high
gates:
  - id: artifact_integrity
    mode: blocking
    config:
      allowed_formats: [joblib, onnx, safetensors]
      max_size_bytes: 2147483648
  - id: fake_drift
    mode: advisory
    config: {min_rows: 1000}
on_warn: require_approval
approvals:
  roles:
    security: {min: 2}
    business: {min: 1}
  channels: [cli, prefect-ui, slack]
  timeout: 24h
  timeout_outcome: reject
"""

# Ten lines of manifest, then `policy_overrides:` on line 11; a case's overrides start on line 12.
MANIFEST = """
# Churn model, with overrides below.
name: churn
owner: dana
authors: [dana]
risk_tier: high
versions:
  "1.0.0":
    artifacts:
      - key: candidates/churn/1.0.0/model.joblib
        sha256: "0000000000000000000000000000000000000000000000000000000000000000"
policy_overrides:
"""


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    root = Path("configs")
    (root / "policies").mkdir(parents=True)
    (root / "models").mkdir()
    shutil.copy(REPO / "configs" / "principals.yaml", root / "principals.yaml")
    (root / "policies" / "high.yaml").write_text(HIGH.lstrip("\n"))
    return root


def write_manifest(root: Path, overrides: str) -> Path:
    path = root / "models" / "churn.yaml"
    body = textwrap.indent(textwrap.dedent(overrides).strip("\n"), "  ")  # under policy_overrides:
    path.write_text(MANIFEST.lstrip("\n") + body + "\n")
    return path


def test_the_documented_example_message(layout: Path) -> None:
    write_manifest(layout, """
          gates:
            - id: artifact_integrity
              config:
                allowed_formats: [joblib]
          on_warn: require_approval
          approvals:
            roles:
              compliance: {min: 1}
              security:
                # one security reviewer would do for this model, says nobody
                min: 1
            timeout: 12h
    """)
    with pytest.raises(ConfigError) as info:
        load_config_dir(layout)
    assert str(info.value) == (
        "configs/models/churn.yaml:22: policy_overrides.approvals.roles.security.min: "
        "1 is looser than the high tier's 2"
    )


LOOSER = [
    pytest.param("""
        gates:
          - id: artifact_integrity
            mode: advisory
    """, "14: policy_overrides.gates.0.mode: advisory is looser than the high tier's blocking", id="mode"),
    pytest.param("""
        gates:
          - id: artifact_integrity
            config:
              allowed_formats: [joblib, pickle]
    """, "15: policy_overrides.gates.0.config.allowed_formats: adds [pickle]; the high tier allows only "
         "[joblib, onnx, safetensors]", id="subset"),
    pytest.param("""
        gates:
          - id: artifact_integrity
            config: {max_size_bytes: 4294967296}
    """, "14: policy_overrides.gates.0.config.max_size_bytes: 4294967296 is looser than the high tier's "
         "2147483648", id="lower"),
    pytest.param("""
        gates:
          - id: fake_drift
            config:
              min_rows: 10
    """, "15: policy_overrides.gates.0.config.min_rows: 10 is looser than the high tier's 1000", id="higher"),
    pytest.param("""
        on_warn: continue
    """, "12: policy_overrides.on_warn: continue is looser than the high tier's require_approval", id="on_warn"),
    pytest.param("""
        approvals:
          channels: [cli, jira]
    """, "13: policy_overrides.approvals.channels: adds [jira]; the high tier allows only "
         "[cli, prefect-ui, slack]", id="channels"),
    pytest.param("""
        approvals:
          roles:
            business: {min: 1}
          timeout: 3d
    """, "15: policy_overrides.approvals.timeout: 3d is looser than the high tier's 24h", id="timeout"),
    pytest.param("""
        approvals:
          timeout_outcome: approve
    """, "13: policy_overrides.approvals.timeout_outcome: approve is looser than the high tier's reject",
        id="timeout_outcome"),
]


@pytest.mark.parametrize(("overrides", "expected"), LOOSER)
def test_loosening_is_rejected_at_its_line(layout: Path, overrides: str, expected: str) -> None:
    manifest = write_manifest(layout, overrides)
    assert [str(i) for i in validate_paths([layout])] == [f"configs/models/churn.yaml:{expected}"]
    assert [str(i) for i in validate_paths([manifest])] == [f"configs/models/churn.yaml:{expected}"]


def test_tightening_everything_is_accepted(layout: Path) -> None:
    write_manifest(layout, """
          gates:
            - id: artifact_integrity
              config:
                allowed_formats: [joblib]
                max_size_bytes: 1048576
            - id: fake_drift
              mode: blocking
              config: {min_rows: 5000, max_psi: 0.1}
          on_warn: require_approval
          approvals:
            roles:
              security: {min: 2}
              compliance: {min: 1}
            channels: [cli, slack]
            timeout: 8h
            timeout_outcome: reject
    """)
    configs = load_config_dir(layout)
    policy = configs.effective_policy("churn")
    assert gate_cfg(policy, "artifact_integrity") == {"allowed_formats": ["joblib"], "max_size_bytes": 1048576}
    drift = policy.gate("fake_drift")
    assert drift is not None and drift.mode is GateMode.BLOCKING
    assert drift.config == {"min_rows": 5000, "max_psi": 0.1}
    assert {role: q.min for role, q in policy.approvals.roles.items()} == {
        "security": 2, "business": 1, "compliance": 1}
    assert policy.approvals.channels == [Channel.CLI, Channel.SLACK]
    assert policy.approvals.timeout.total_seconds() == 8 * 3600
    # The tier policy itself is unchanged for other models.
    assert configs.policies["high"].approvals.roles["security"].min == 2
    assert configs.policies["high"].approvals.timeout.total_seconds() == 24 * 3600

"""The shipped tiers (configs/policies/) run every built-in gate, and data_check as documented."""

from __future__ import annotations

import ast
from pathlib import Path

from clearance.config import load_config_dir
from clearance.config.schema import GateMode, Policy
from gates.base import registered_gates
from gates.data_check.models import DataCheckConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def builtin_gate_modules() -> set[str]:
    """The modules gates/builtin.py imports (each registers its gates when imported)."""
    tree = ast.parse((REPO / "gates" / "builtin.py").read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return modules


def builtin_gates() -> set[str]:
    """Ids of the registered gates that gates/builtin.py brings in (installed plugins left out)."""
    modules = builtin_gate_modules()
    return {gate_id for gate_id, cls in registered_gates().items()
            if any(cls.__module__ == m or cls.__module__.startswith(m + ".") for m in modules)}


def gates_in_no_tier(gate_ids: set[str], policies: dict[str, Policy]) -> set[str]:
    return {g for g in gate_ids if all(p.gate(g) is None for p in policies.values())}


def shipped_policies() -> dict[str, Policy]:
    return load_config_dir(CONFIGS).policies


def test_every_builtin_gate_is_in_a_shipped_tier():
    gates = builtin_gates()
    assert {"artifact_integrity", "data_check"} <= gates
    assert gates_in_no_tier(gates, shipped_policies()) == set(), "a built-in gate no shipped tier runs"


def test_every_module_builtin_imports_registers_a_gate():
    registered_modules = {cls.__module__ for cls in registered_gates().values()}
    for module in builtin_gate_modules():
        assert any(m == module or m.startswith(module + ".") for m in registered_modules), module


def test_a_forgotten_gate_is_caught():
    assert gates_in_no_tier({"data_check", "model_card"}, shipped_policies()) == {"model_card"}


def test_data_check_in_the_shipped_tiers():
    policies = shipped_policies()
    specs = {tier: policy.gate("data_check") for tier, policy in policies.items()}
    assert all(spec is not None for spec in specs.values()), specs
    modes = {tier: spec.mode for tier, spec in specs.items() if spec}
    assert modes == {"low": GateMode.ADVISORY, "medium": GateMode.BLOCKING, "high": GateMode.BLOCKING}
    config = {tier: DataCheckConfig.model_validate(spec.config) for tier, spec in specs.items() if spec}
    high, medium, low = config["high"], config["medium"], config["low"]
    assert high.ks_mode == "exact" and medium.ks_mode == "exact" and low.ks_mode == "bounded"
    assert high.require_reference and high.require_digest and high.require_contract
    assert medium.require_contract and not medium.require_reference
    assert not (low.require_contract or low.require_digest or low.require_reference)
    # the higher the tier, the lower (stricter) its drift levels
    for kind in ("psi", "ks"):
        assert getattr(high, kind).fail <= getattr(medium, kind).fail <= getattr(low, kind).fail
    # artifact_integrity still runs first, blocking, in every tier
    assert all(policy.gates[0].id == "artifact_integrity" and policy.gates[0].mode is GateMode.BLOCKING
               for policy in policies.values())


def test_security_scan_in_the_shipped_tiers():
    from gates.security_scan.config import Action, AdvisorySeverity, SecurityScanConfig

    policies = shipped_policies()
    specs = {tier: policy.gate("security_scan") for tier, policy in policies.items()}
    assert specs["low"] is None
    assert {tier: spec.mode for tier, spec in specs.items() if spec} == {"medium": GateMode.BLOCKING,
                                                                         "high": GateMode.BLOCKING}
    high = SecurityScanConfig.model_validate(specs["high"].config)
    medium = SecurityScanConfig.model_validate(specs["medium"].config)
    # high accepts only allowlisted joblib, onnx and safetensors, as artifact_integrity does
    integrity = policies["high"].gate("artifact_integrity")
    assert integrity is not None and set(high.allowed_formats) == set(integrity.config["allowed_formats"])
    assert high.unknown_callable is Action.FAIL and medium.unknown_callable is Action.WARN
    assert high.dependencies.required and not medium.dependencies.required
    assert high.dependencies.fail_at <= AdvisorySeverity.HIGH and medium.dependencies.fail_at <= AdvisorySeverity.HIGH
    assert high.secrets is Action.FAIL and medium.secrets is Action.FAIL
    # what an S3 server cannot tell (SeaweedFS: the public access block) warns, so `make demo` completes
    assert high.storage.unknown is Action.WARN and medium.storage.unknown is Action.WARN
    assert "policy" in high.storage.require and "policy" in medium.storage.require


def test_compliance_review_in_the_shipped_tiers():
    from gates.base import parse_gate_config
    from gates.compliance_review.config import ComplianceReviewConfig
    from gates.compliance_review.model_card import REQUIRED_BY_TIER
    from gates.security_scan.config import Action

    policies = shipped_policies()
    specs = {tier: policy.gate("compliance_review") for tier, policy in policies.items()}
    assert all(spec is not None for spec in specs.values()), specs
    assert {tier: spec.mode for tier, spec in specs.items() if spec} == {
        "low": GateMode.ADVISORY, "medium": GateMode.BLOCKING, "high": GateMode.BLOCKING}
    # it reads the results of the gates before it (regulatory evidence, scorecard): it runs last
    assert all(policy.gates[-1].id == "compliance_review" for policy in policies.values())
    config = {tier: parse_gate_config("compliance_review", spec.config) for tier, spec in specs.items() if spec}
    assert all(isinstance(c, ComplianceReviewConfig) for c in config.values())
    high, medium, low = config["high"], config["medium"], config["low"]
    sections = ("model_card", "fairness", "personal_data", "lineage", "business", "regulatory", "readiness")
    # high judges everything; fairness is required; tier-wide tags the mapping file knows
    assert all(getattr(high, s).enabled for s in sections)
    assert high.fairness.required and high.lineage.missing is Action.FAIL and high.business.kpi_required
    assert high.readiness.missing is Action.WARN
    assert {"eu-ai-act-high-risk", "gdpr"} <= set(high.regulatory.tags) | set(policies["high"].regulatory_tags)
    assert high.model_card.required is None or set(high.model_card.required) >= REQUIRED_BY_TIER["high"]
    # medium: the medium model card, fairness only when given, lineage gaps warn, no tier-wide controls
    assert set(medium.model_card.required or REQUIRED_BY_TIER["medium"]) == REQUIRED_BY_TIER["medium"]
    assert medium.personal_data.enabled and medium.business.kpi_required
    assert medium.fairness.enabled and not medium.fairness.required
    assert medium.lineage.missing is Action.WARN and medium.readiness.missing is Action.WARN
    assert not medium.regulatory.tags and not policies["medium"].regulatory_tags
    # low: advisory, the model card and personal data only
    assert {s for s in sections if getattr(low, s).enabled} == {"model_card", "personal_data"}
    # the higher the tier, the lower (stricter) its fairness levels
    for name in ("demographic_parity_difference", "equalized_odds_difference"):
        assert getattr(high.fairness, name).fail <= getattr(medium.fairness, name).fail


def test_load_test_and_cost_in_the_shipped_tiers():
    from gates.base import parse_gate_config
    from gates.cost.config import CostConfig
    from gates.load_test.config import LoadTestConfig

    policies = shipped_policies()
    high = policies["high"]
    ids = [spec.id for spec in high.gates]
    # cost reads load_test's sustainable rate; compliance_review's readiness scorecard reads cost: that order
    assert ids.index("load_test") < ids.index("cost") < ids.index("compliance_review")
    load, cost = high.gate("load_test"), high.gate("cost")
    assert load is not None and cost is not None
    assert load.mode is GateMode.BLOCKING and cost.mode is GateMode.BLOCKING
    load_config = parse_gate_config("load_test", load.config)
    cost_config = parse_gate_config("cost", cost.config)
    assert isinstance(load_config, LoadTestConfig) and isinstance(cost_config, CostConfig)
    # the SLO of the issue: every percentile judged, warn before fail; a bounded run
    slo = load_config.slo
    for levels in (slo.p50_ms, slo.p95_ms, slo.p99_ms, slo.error_rate):
        assert levels.warn is not None and levels.fail is not None and levels.warn < levels.fail
    assert slo.min_achieved_ratio.fail is not None and slo.min_achieved_ratio.fail < 1
    assert load_config.planned_requests() <= load_config.max_requests
    assert cost_config.require_price and cost_config.budget_per_1000.fail is not None
    # only the high tier loads an endpoint (the others may add the gates through a manifest)
    assert policies["medium"].gate("load_test") is None and policies["low"].gate("load_test") is None

"""A promotion that would lower the live version: refused, or allowed only on purpose (issue 17)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.approvals.rules import downgrade_refusal
from clearance.core import keys
from clearance.core.versions import compare_versions


@pytest.mark.parametrize(("a", "b", "order"), [
    ("1.0.10", "1.0.9", 1),  # as versions, not as text
    ("1.0.0", "1.0", 0),
    ("1.0.0rc1", "1.0.0", -1),
    ("2.0.0", "10.0.0", -1),
    ("2024-q3-retrain", "1.0.0", None),  # not PEP 440: no order
])
def test_versions_are_ordered_as_pep_440(a: str, b: str, order: int | None) -> None:
    assert compare_versions(a, b) == order


def test_a_lower_version_is_refused_or_needs_the_explicit_flag() -> None:
    assert downgrade_refusal("m", "1.2.0", None, "refuse", False) is None  # nothing live
    assert downgrade_refusal("m", "1.2.0", "1.1.0", "refuse", False) is None  # an upgrade
    assert downgrade_refusal("m", "1.1.0", "1.1.0", "refuse", False) is None  # the live version again
    assert downgrade_refusal("m", "retrain-b", "1.1.0", "refuse", False) is None  # no order: not a downgrade
    refused = downgrade_refusal("m", "1.0.9", "1.0.10", "refuse", True)
    assert refused is not None and "refuses downgrades" in refused and "clearance rollback m --to 1.0.9" in refused
    needs_flag = downgrade_refusal("m", "1.0.9", "1.0.10", "explicit", False)
    assert needs_flag is not None and "--allow-downgrade" in needs_flag
    assert downgrade_refusal("m", "1.0.9", "1.0.10", "explicit", True) is None


def _configs_with_versions(tmp_path, tier_downgrades: str):
    import yaml

    from tests.integration.promotion_kit import POLICY_HIGH, PRINCIPALS

    root = tmp_path / "configs"
    (root / "policies").mkdir(parents=True)
    (root / "models").mkdir()
    policy = {**POLICY_HIGH, "promotion": {"prefix": "production", "downgrades": tier_downgrades}}
    (root / "policies" / "high.yaml").write_text(yaml.safe_dump(policy))
    (root / "principals.yaml").write_text(yaml.safe_dump({"principals": PRINCIPALS}))
    versions = {v: {"artifacts": [{"key": f"candidates/m/{v}/model.joblib", "sha256": "a" * 64}]}
                for v in ("1.0.0", "1.1.0")}
    (root / "models" / "m.yaml").write_text(yaml.safe_dump({"name": "m", "owner": "dana", "risk_tier": "high",
                                                            "versions": versions}))
    return root


@pytest.mark.parametrize(("mode", "flag", "says"), [
    ("refuse", [], "refuses downgrades"),
    ("refuse", ["--allow-downgrade"], "refuses downgrades"),
    ("explicit", [], "--allow-downgrade"),
])
def test_promote_refuses_a_downgrade_before_starting_a_run(tmp_path, monkeypatch, mode, flag, says) -> None:
    from tasks.promotion import ProductionPointer
    from tests.fakes.memory_store import MemoryStore

    root = _configs_with_versions(tmp_path, mode)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(root))
    from clearance.settings import get_settings

    get_settings.cache_clear()
    store = MemoryStore()
    live = ProductionPointer(model="m", version="1.1.0", artifact_digest="d" * 64, artifacts={}, run_id="r")
    store.put_if_absent(keys.pointer_key("m"), live.model_dump_json().encode())
    monkeypatch.setattr("clearance.app.cli._store", lambda: store)
    started = []
    monkeypatch.setattr("clearance.app.cli._start_proof", lambda *a: started.append(a) or ("dana", None))
    result = CliRunner().invoke(app, ["promote", "m", "1.0.0", *flag])
    get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "refused: m 1.0.0 is lower than the live 1.1.0" in result.stderr and says in result.stderr
    assert started == []  # no run was started, nothing was signed

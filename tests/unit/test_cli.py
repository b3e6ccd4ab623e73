"""CLI behaviour that needs no server: validation exit codes and messages, bad promote arguments."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.settings import get_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "configs"
runner = CliRunner()


@pytest.fixture
def configs(tmp_path, monkeypatch):
    target = tmp_path / "configs"
    shutil.copytree(EXAMPLES, target)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(target))
    get_settings.cache_clear()
    yield target
    get_settings.cache_clear()


def test_validate_ok_and_broken(configs):
    assert runner.invoke(app, ["validate", str(configs)]).exit_code == 0
    policy = configs / "policies" / "high.yaml"
    policy.write_text(policy.read_text().replace("security: {min: 1}", "security: {min: 0}"))
    result = runner.invoke(app, ["validate", str(configs)])
    assert result.exit_code == 2
    assert "policies/high.yaml:" in result.output and "approvals.roles.security.min: must be >= 1" in result.output


def test_promote_unknown_model_or_version_is_a_clear_error(configs):
    result = runner.invoke(app, ["promote", "nope", "1.0.0"])
    assert result.exit_code == 2 and "no model 'nope'" in result.output and "churn-classifier" in result.output
    result = runner.invoke(app, ["promote", "churn-classifier", "9.9"])
    assert result.exit_code == 2 and "no version '9.9'" in result.output


def test_reject_needs_a_reason(configs):
    result = runner.invoke(app, ["reject", "some-run", "--reason", "  "])
    assert result.exit_code == 2 and "--reason" in result.output

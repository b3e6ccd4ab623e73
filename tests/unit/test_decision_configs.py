"""What `clearance approve` reads of the configs (clearance/config/decision_configs.py): principals.yaml
checked exactly as a whole load checks it, one manifest on demand, never a path made from an untrusted name,
and no gate loaded."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clearance.config import ConfigError, load_config_dir
from clearance.config.decision_configs import load_decision_configs

REPO = Path(__file__).resolve().parents[2]
MODEL = "churn-classifier"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(REPO / "configs", folder)
    return folder


def test_the_same_principals_and_manifest_as_a_whole_load(configs: Path) -> None:
    whole = load_config_dir(configs)
    decision = load_decision_configs(configs)
    assert decision.principals == whole.principals
    assert decision.manifest(MODEL) == whole.manifests[MODEL]
    assert load_decision_configs(configs.parent).principals == whole.principals  # the repository root, as a whole load


def test_an_identity_claimed_twice_is_refused_with_the_issues_a_whole_load_names(configs: Path) -> None:
    people = configs / "principals.yaml"
    people.write_text(people.read_text().replace("local_users: [sam]", "local_users: [sam, dana]"))
    with pytest.raises(ConfigError) as whole:
        load_config_dir(configs)
    with pytest.raises(ConfigError) as decision:
        load_decision_configs(configs)
    principals_issues = [i for i in whole.value.issues if i.file.endswith("principals.yaml")]
    assert principals_issues, whole.value
    assert decision.value.issues == principals_issues
    assert any("dana" in issue.message for issue in decision.value.issues), decision.value


def test_no_principals_file_is_an_error_naming_it(configs: Path) -> None:
    (configs / "principals.yaml").unlink()
    with pytest.raises(ConfigError, match=r"principals\.yaml.*file not found"):
        load_decision_configs(configs)


def test_a_broken_manifest_is_an_error_naming_its_field(configs: Path) -> None:
    manifest = configs / "models" / f"{MODEL}.yaml"
    manifest.write_text(manifest.read_text().replace("risk_tier: high", "risk_tier: [high]", 1))
    decision = load_decision_configs(configs)  # principals are fine: the manifest is read only when asked for
    with pytest.raises(ConfigError, match=rf"{MODEL}\.yaml:\d+: risk_tier"):
        decision.manifest(MODEL)


@pytest.mark.parametrize("name", ["no-such-model", "../principals", "..", "models/../x", "UPPER", "", "a" * 65])
def test_a_model_without_its_manifest_file_has_none(configs: Path, name: str) -> None:
    (configs / "models" / "x.yaml").write_text("not: read\n")
    assert load_decision_configs(configs).manifest(name) is None


def test_a_manifest_named_for_another_model_is_not_that_models(configs: Path) -> None:
    shutil.copy(configs / "models" / f"{MODEL}.yaml", configs / "models" / "other.yaml")
    assert load_decision_configs(configs).manifest("other") is None


def test_reading_them_loads_no_gate(configs: Path) -> None:
    code = ("import sys\nfrom clearance.config.decision_configs import load_decision_configs\n"
            f"load_decision_configs({str(configs)!r}).manifest({MODEL!r})\n"
            "print(sorted(m for m in sys.modules if m == 'gates.builtin' or m.endswith('.gate')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

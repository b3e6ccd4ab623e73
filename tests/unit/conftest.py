"""Fixtures shared by the unit tests (they start no server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example configs in ./configs (relative, so issues name configs/… as a user sees them), free
    to break. Modules that need another layout (tests/unit/test_cli.py, test_config_loader.py) define their own."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, tmp_path / "configs")
    return Path("configs")

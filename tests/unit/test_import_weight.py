"""Importing a flow module loads no data-science library: gates load theirs when they run.

A suspended deployment run is resumed in a new process that imports its flow module first; every
library that import drags in is paid on each resume, by every promotion, whatever its gates. Each case
runs in a fresh interpreter (this test process may have imported anything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "pandas", "numpy", "scipy", "sklearn", "matplotlib", "PIL", "hdrh", "joblib", "duckdb",
         "polars", "fairlearn")
# Imports the modules in order and says, after each, which top-level packages it added.
PROBE = """
import json, sys
added = {}
for name in sys.argv[1:]:
    before = {m.split(".")[0] for m in sys.modules}
    __import__(name)
    added[name] = sorted({m.split(".")[0] for m in sys.modules} - before)
print(json.dumps(added))
"""
FLOWS = ("flows.promote", "flows.recertify", "flows.rollback")


@pytest.fixture(scope="module")
def added() -> dict[str, set[str]]:
    """Module → the top-level packages importing it added, in one fresh interpreter: the flows, then the gate
    registry (gates/builtin.py, imported when a gate runs), then a module that does import NumPy (the control)."""
    modules = (*FLOWS, "gates.builtin", "gates.data_check.stats")
    done = subprocess.run([sys.executable, "-c", PROBE, *modules], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {name: set(new) for name, new in json.loads(done.stdout.strip().splitlines()[-1]).items()}


@pytest.mark.parametrize("flow_module", FLOWS)
def test_a_flow_module_imports_no_heavy_library(added: dict[str, set[str]], flow_module: str) -> None:
    heavy = added[flow_module] & set(HEAVY)
    assert not heavy, f"importing {flow_module} loads {sorted(heavy)}: import them where they are used"


def test_registering_the_gates_imports_no_heavy_library(added: dict[str, set[str]]) -> None:
    # A gate is looked up through the registry when it runs: a promotion whose policy has only
    # artifact_integrity must not load the data_check or compliance_review libraries.
    heavy = added["gates.builtin"] & set(HEAVY)
    assert not heavy, f"registering the built-in gates loads {sorted(heavy)}"


def test_the_probe_sees_a_heavy_import(added: dict[str, set[str]]) -> None:
    # The probe works: a module that imports NumPy at import time is reported as adding it.
    assert "numpy" in added["gates.data_check.stats"]

"""The load generator of the ``load_test`` gate (issue 15): an open-model, multi-process HTTP/SageMaker load run.

``run_load(target, plan, bodies, evidence_dir) -> LoadRun`` (:mod:`tasks.load_generator.run`); the models in
:mod:`tasks.load_generator.models`. The verdict is the gate's (``gates/load_test``): nothing here judges a result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.load_generator.models import LoadPlan, LoadRun, LoadTarget, StepResult

if TYPE_CHECKING:
    from tasks.load_generator.run import run_load

__all__ = ["LoadPlan", "LoadRun", "LoadTarget", "StepResult", "run_load"]


def __getattr__(name: str) -> Any:
    """``run_load`` is imported when first asked for: its module pulls in NumPy and the HDR histograms, which a
    flow that only imports the models (every promotion imports this package) should not pay for."""
    if name == "run_load":
        from tasks.load_generator.run import run_load

        return run_load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The load generator of the ``load_test`` gate (issue 15): an open-model, multi-process HTTP/SageMaker load run.

``run_load(target, plan, bodies, evidence_dir) -> LoadRun`` (:mod:`tasks.load_generator.run`); the models in
:mod:`tasks.load_generator.models`. The verdict is the gate's (``gates/load_test``): nothing here judges a result.
"""

from tasks.load_generator.models import LoadPlan, LoadRun, LoadTarget, StepResult
from tasks.load_generator.run import run_load

__all__ = ["LoadPlan", "LoadRun", "LoadTarget", "StepResult", "run_load"]

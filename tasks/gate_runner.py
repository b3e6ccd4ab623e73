"""Running one policy gate as a Prefect task (cached per run, so a resumed run does not rerun it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gates.base import GateInputs, GateResult, run_gate
from tasks.caching import per_run_key
from tasks.prefect_tasks import task


@task(name="gate", task_run_name="gate-{gate_id}", persist_result=True, cache_key_fn=per_run_key)
def evaluate_gate(gate_id: str, inputs: GateInputs, config: dict[str, Any], blocking: bool) -> GateResult:
    """Evaluate a registered gate; a crash becomes an ``error`` result (the gate decides, not this task)."""
    if inputs.extra.get("evidence_dir"):
        Path(inputs.extra["evidence_dir"]).mkdir(parents=True, exist_ok=True)
    return run_gate(gate_id, inputs, config, blocking=blocking)

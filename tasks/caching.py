"""Cache keys that make a resumed promotion reuse what it already did.

A suspended deployment run restarts from the top when resumed. Every task that
already ran in this flow run must return its stored result instead of running
again (a gate must not be re-evaluated, a ledger entry not appended twice).
Prefect's default input hashing falls back to cloudpickle for pydantic models,
which is not stable across processes, so the key is built here from canonical
JSON: flow run id + task name + parameters.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from clearance.core.digests import sha256_json


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def per_run_key(context: Any, parameters: dict[str, Any]) -> str:
    """Prefect ``cache_key_fn``: stable within one flow run, different in every other run."""
    run = context.task_run
    return sha256_json({"run": str(run.flow_run_id), "task": context.task.name, "params": _plain(parameters)})

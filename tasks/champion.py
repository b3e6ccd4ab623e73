"""The model in production (the champion), as the ``compliance_review`` gate compares a candidate with it.

Why: a challenger that is worse than the model it replaces must not pass unnoticed. The champion's
numbers are not recomputed here: they are read from its own evidence — the ``compliance_review``
result of the run that put it live (the production pointer's ``run_id``): its ``evaluation.<metric>``
metrics and the digest of the predictions dataset it was judged on (``dataset:predictions``).

:func:`read_champion` never raises: no model in production (or the candidate's own version live)
is ``None``; a store that cannot answer is ``{"error": why}``, which the gate reports as an ``error``
check (never a silent pass); a live model without that evidence (it went live before the gate existed,
or by a tier that does not run it) is ``{"version", "run_id", "unjudged": why}``, which the gate reports
as a ``warn``: the approvers see that the candidate was not compared with production.
"""

from __future__ import annotations

from typing import Any

from clearance.core.keys import gate_result_name, run_prefix
from gates.base import GateResult
from tasks.caching import per_run_key
from tasks.prefect_tasks import task
from tasks.promotion import PointerState, read_pointer
from tasks.store import Store
from tasks.wiring import object_store

GATE_ID = "compliance_review"
METRIC_PREFIX = "evaluation."
PREDICTIONS_DIGEST = "dataset:predictions"


def champion_from_result(version: str, run_id: str, result: GateResult) -> dict[str, Any]:
    """The champion entry of ``GateInputs.extra`` from the live run's stored ``compliance_review`` result."""
    return {"version": version, "run_id": run_id,
            "metrics": {k: v for k, v in result.metrics.items() if k.startswith(METRIC_PREFIX)},
            "predictions_sha256": result.input_digests.get(PREDICTIONS_DIGEST)}


def read_champion(store: Store, prefix: str, model: str, version: str,
                  pointer: PointerState | None = None) -> dict[str, Any] | None:
    """``None`` | ``{"version", "run_id", "metrics", "predictions_sha256"}`` | ``{"error": why}`` |
    ``{"version", "run_id", "unjudged": why}``.

    ``pointer`` is the production pointer as the run already read it (the one its final move is
    compare-and-swap against); without it the pointer is read here.
    """
    try:
        state = pointer if pointer is not None else read_pointer(store, prefix, model)
    except Exception as exc:  # noqa: BLE001 — reported by the gate as an error check
        return {"error": f"could not read the production pointer of {model}: {type(exc).__name__}: {exc}"}
    live = state.pointer
    if live is None or live.version == version:
        return None  # nothing in production, or this very version: no one to compare with
    key = run_prefix(model, live.version, live.run_id) + gate_result_name(GATE_ID)
    try:  # only this gate's stored result (tasks/evidence.py stored_gate_results reads every gate's)
        found = GateResult.model_validate(store.get_json(key)) if store.head(key) is not None else None
    except Exception as exc:  # noqa: BLE001 — reported by the gate as an error check
        return {"error": f"could not read the {GATE_ID} evidence of the production run {live.run_id} ({model} "
                         f"{live.version}): {type(exc).__name__}: {exc}"}
    if found is None:  # promoted before this gate ran (or by a tier without it): nothing to compare with
        return {"version": live.version, "run_id": live.run_id,
                "unjudged": f"the production run {live.run_id} ({model} {live.version}) has no {GATE_ID} evidence: "
                            f"it went live before this gate judged it"}
    return champion_from_result(live.version, live.run_id, found)


@task(name="read-champion", persist_result=True, cache_key_fn=per_run_key)
def read_champion_task(prefix: str, model: str, version: str, pointer: PointerState | None = None
                       ) -> dict[str, Any] | None:
    """Prefect task around :func:`read_champion` on the configured store (cached per run: a resumed run
    compares with the champion its first pass saw)."""
    return read_champion(object_store(), prefix, model, version, pointer)

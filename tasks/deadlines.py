"""Applying approval deadlines to suspended runs, which hold no process that could notice them; and
closing the ledgers of promotions that ended without saying so (tasks/recovery.py).

"Past the deadline" is judged by the object store's clock (:meth:`tasks.store.Store.server_time`), the
same clock that times decisions, so the sweep and the intake never disagree about a moment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from clearance.core.clock import utcnow
from clearance.ledger import LedgerEntry
from tasks.approval_intake import UnknownRunError, record_key_for_run
from tasks.approvals_record import close_if_due
from tasks.prefect_runs import LEDGER_FLOWS, promotion_runs, wake_run
from tasks.recovery import configured_prefixes, recover_model
from tasks.store import Store

log = logging.getLogger("clearance.deadlines")

#: How far back the sweep looks for promotions that ended (their ledgers are checked each minute for that long).
RECOVERY_WINDOW = timedelta(days=1)


def waiting_promotion_runs(limit: int = 200) -> list[str]:
    """Ids of promote-model runs that are paused or suspended."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["promote-model"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
            limit=limit,
        )
    return [str(run.id) for run in runs]


def expire_overdue(store: Store, run_ids: list[str] | None = None) -> list[str]:
    """Close every waiting run's request that is past its deadline and wake the run; returns their ids.
    ``run_ids``: the waiting runs as the caller read them (default: asked of Prefect here)."""
    woken = []
    for run_id in waiting_promotion_runs() if run_ids is None else run_ids:
        try:
            key = record_key_for_run(store, run_id)
        except UnknownRunError:
            continue
        if close_if_due(store, key, now=store.server_time()).outcome.closed and wake_run(run_id, wait_seconds=5):
            woken.append(run_id)
    return woken


def recently_ended_models(window: timedelta = RECOVERY_WINDOW) -> list[str]:
    """Models of promotion, rollback and re-certification runs (not dry runs) that ended Failed, Crashed or
    Cancelled within ``window``."""
    runs = promotion_runs({StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}, ended_after=utcnow() - window,
                          flows=LEDGER_FLOWS)
    return sorted({str(run.parameters["model"]) for run in runs
                   if run.parameters.get("model") and not run.parameters.get("dry_run")})


def recover_ended_runs(store: Store, models: Sequence[str] | None = None) -> list[LedgerEntry]:
    """Close the ledgers of runs that ended without a closing entry, and record versions the pointer made
    live without one (tasks/recovery.py), for ``models`` (default: those with a promotion that ended
    badly within :data:`RECOVERY_WINDOW`). One model failing does not stop the others."""
    prefixes = configured_prefixes()
    closed: list[LedgerEntry] = []
    for model in recently_ended_models() if models is None else models:
        try:
            closed += recover_model(store, model, prefixes=prefixes)
        except Exception as exc:  # noqa: BLE001 — the next minute tries again; the other models go on
            log.warning("could not close the runs %s left open in its ledger: %s: %s", model, type(exc).__name__,
                        exc)
    return closed

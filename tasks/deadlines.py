"""Applying approval deadlines to suspended runs, which hold no process that could notice them.

"Past the deadline" is judged by the object store's clock (:meth:`tasks.store.Store.server_time`), the
same clock that times decisions, so the sweep and the intake never disagree about a moment.
"""

from __future__ import annotations

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from tasks.approval_intake import UnknownRunError, record_key_for_run
from tasks.approvals_record import close_if_due
from tasks.prefect_runs import wake_run
from tasks.store import Store


def waiting_promotion_runs(limit: int = 200) -> list[str]:
    """Ids of promote-model runs that are paused or suspended."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["promote-model"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
            limit=limit,
        )
    return [str(run.id) for run in runs]


def expire_overdue(store: Store) -> list[str]:
    """Close every waiting run's request that is past its deadline and wake the run; returns their ids."""
    woken = []
    for run_id in waiting_promotion_runs():
        try:
            key = record_key_for_run(store, run_id)
        except UnknownRunError:
            continue
        if close_if_due(store, key, now=store.server_time()).outcome.closed and wake_run(run_id, wait_seconds=5):
            woken.append(run_id)
    return woken

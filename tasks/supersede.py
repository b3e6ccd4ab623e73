"""Closing older pending promotions of a model once a newer version is approved.

The approved run calls :func:`supersede_older` right after its sign-off: every promote-model run of the
same model still waiting in Prefect (paused or suspended) for an older version has its approvals record
closed as ``superseded`` (compare-and-swap, only while pending: a decision landing first wins), is woken
so it stops itself (``superseded`` in its ledger, its report, Prefect's Failed state), and the channels
get a ``closed`` event so Slack and Jira stop asking at once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prefect.client.schemas.objects import StateType

from clearance.core.versions import compare_versions
from clearance.events import event_for
from tasks.approval_intake import UnknownRunError, record_key_for_run
from tasks.approvals_record import read_record, supersede
from tasks.channels import publish_event
from tasks.prefect_runs import promotion_runs, wake_run
from tasks.store import Store

log = logging.getLogger("clearance.supersede")

#: How long to wait for each superseded run to take its wake-up (it re-reads its record either way later).
WAKE_SECONDS = 5.0


def is_older(other: str, other_opened: datetime, version: str, opened: datetime) -> bool:
    """Whether ``other`` is an older version than ``version``: by PEP 440 when both parse, else opened earlier."""
    order = compare_versions(other, version)
    if order is None:
        return other != version and other_opened < opened
    return order < 0


def supersede_older(store: Store, model: str, version: str, run_id: str, now: datetime | None = None) -> list[str]:
    """Close the pending requests of older versions of ``model`` as superseded by ``version`` (run ``run_id``);
    returns the ids of the runs superseded. Problems with one run are logged and the others go on."""
    moment = now or store.server_time()
    try:
        opened = read_record(store, record_key_for_run(store, run_id))[0].request.opened_at
    except UnknownRunError:
        opened = moment  # approved without a sign-off: every request opened before now is older
    superseded = []
    for run in promotion_runs({StateType.PAUSED}):
        if run.run_id == run_id or run.parameters.get("model") != model or run.parameters.get("dry_run"):
            continue
        try:
            key = record_key_for_run(store, run.run_id)
            waiting, _ = read_record(store, key)
            if not is_older(waiting.request.version, waiting.request.opened_at, version, opened):
                continue
            record = supersede(store, key, version, run_id, moment)
            if record is None:
                continue  # decided or closed meanwhile
        except UnknownRunError:
            continue
        except Exception as exc:  # noqa: BLE001 — the approved run goes on; this one still waits for people
            log.warning("could not supersede run %s: %s: %s", run.run_id, type(exc).__name__, exc)
            continue
        superseded.append(run.run_id)
        try:
            if not wake_run(run.run_id, wait_seconds=WAKE_SECONDS):
                log.warning("superseded run %s did not take its wake-up; the deadline sweep wakes it", run.run_id)
        except Exception as exc:  # noqa: BLE001 — the record is closed; the sweep wakes closed runs later
            log.warning("superseded run %s was not woken: %s: %s", run.run_id, type(exc).__name__, exc)
        publish_event(event_for(record, "closed", status="superseded", message=record.closed_by[0]))
    return superseded

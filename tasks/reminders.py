"""Reminding the people a waiting sign-off still needs, then escalating: one pass of the deadline sweep.

No process per run: every minute the sweep (`clearance worker`) looks at the waiting promotions, asks
:func:`clearance.approvals.reminders.due_nudges` what each is due by the store's clock, and for each nudge
records it in the approvals record first (compare-and-swap: of two sweeps racing, only the one that
recorded it goes on), then writes the ledger entry (``reminded`` / ``escalated``, about the waiting run:
``about_run``, since ``run`` names only a run writing its own entries) and tells the channels (a
``reminder`` / ``escalated`` event whose ``mentions`` are the people to ping).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from clearance.approvals import ApprovalRecord
from clearance.approvals.reminders import Nudge, due_nudges, nudge_message
from clearance.config.schema import Principals
from clearance.core.ledger_kinds import LedgerKind
from clearance.events import EventKind, event_for
from tasks.approval_intake import UnknownRunError, record_key_for_run
from tasks.approvals_record import read_record, record_nudge
from tasks.channels import publish_event
from tasks.deadlines import waiting_promotion_runs
from tasks.ledger import append_entry
from tasks.store import Store

log = logging.getLogger("clearance.reminders")

_LEDGER_KIND = {"reminder": LedgerKind.REMINDED, "escalation": LedgerKind.ESCALATED}
_EVENT_KIND: dict[str, EventKind] = {"reminder": "reminder", "escalation": "escalated"}


@dataclass(frozen=True)
class Reminded:
    """One nudge this sweep sent."""

    run_id: str
    model: str
    version: str
    kind: str
    number: int
    to: list[str]
    ledger_seq: int | None = None
    channel_notes: list[str] = field(default_factory=list)


def send_due_reminders(store: Store, now: datetime | None = None, principals: Principals | None = None,
                       run_ids: list[str] | None = None) -> list[Reminded]:
    """Send every reminder and escalation due at ``now`` (default: the store's clock) to waiting promotions.

    ``principals`` default to the configs' (who holds which role now); ``run_ids`` to the paused promote-model
    runs in Prefect. One run failing does not stop the others (the next sweep tries again).
    """
    if principals is None:
        from clearance.config import ConfigError
        from tasks.wiring import config_set

        try:
            principals = config_set().principals
        except (ConfigError, OSError) as exc:
            log.warning("no reminders sent: the configs could not be read: %s", exc)
            return []
    moment = now or store.server_time()
    sent: list[Reminded] = []
    for run_id in waiting_promotion_runs() if run_ids is None else run_ids:
        try:
            sent += _remind_run(store, run_id, principals, moment)
        except UnknownRunError:
            continue  # still in its gates: no request yet
        except Exception as exc:  # noqa: BLE001 — the other runs go on; the next sweep tries this one again
            log.warning("could not send the reminders of run %s: %s: %s", run_id, type(exc).__name__, exc)
    return sent


def _remind_run(store: Store, run_id: str, principals: Principals, now: datetime) -> list[Reminded]:
    key = record_key_for_run(store, run_id)
    record, _ = read_record(store, key)
    sent = []
    for nudge in due_nudges(record, principals, now):
        updated = record_nudge(store, key, nudge, now)
        if updated is None:
            continue  # another sweep sent it, or the request closed meanwhile
        sent.append(_tell(store, updated, nudge))
    return sent


def _tell(store: Store, record: ApprovalRecord, nudge: Nudge) -> Reminded:
    """Ledger entry, then the channels; the record already says it was sent, so a failure here is logged only."""
    request = record.request
    model, version, run_id = request.model, request.version, request.run_id
    message = nudge_message(nudge)
    seq = None
    try:
        entry = append_entry(store, model, _LEDGER_KIND[nudge.kind], {
            "about_run": run_id, "version": version, "number": nudge.number, "to": nudge.to,
            "missing": nudge.missing, "waiting_on": nudge.waiting_on, "due": nudge.due.isoformat()})
        seq = entry.seq
    except Exception as exc:  # noqa: BLE001 — the record holds the nudge; the channels still get it
        log.warning("the %s of run %s was not written to the ledger of %s: %s: %s", nudge.kind, run_id, model,
                    type(exc).__name__, exc)
    notes = publish_event(event_for(record, _EVENT_KIND[nudge.kind], mentions=list(nudge.to), message=message,
                                    status=f"{nudge.kind}-{nudge.number}"))
    return Reminded(run_id=run_id, model=model, version=version, kind=nudge.kind, number=nudge.number,
                    to=list(nudge.to), ledger_seq=seq, channel_notes=list(notes))

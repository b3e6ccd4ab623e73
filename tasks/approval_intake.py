"""The one path every channel's decision takes after the channel has authenticated the person.

Channel (CLI, Prefect UI, Slack, Jira) → :func:`receive_decision`: find the run's record,
authorise and record with compare-and-swap, and wake the waiting run when the outcome changed.

Nothing here imports Prefect: the wake-up is two REST requests (:mod:`tasks.prefect_rest`), so a person's
``clearance approve`` does not wait seconds for Prefect's client to load.

The deadline is judged by, and the decision timed with, the object store's clock
(:meth:`tasks.store.Store.server_time`): the intake may run on the approver's own machine (the CLI),
whose clock the approver controls.
"""

from __future__ import annotations

import logging
from typing import Any

from clearance.approvals.models import Vote
from clearance.config.schema import Assurance, Channel, Principal, Principals
from clearance.core.keys import run_index_key
from clearance.events import event_for
from clearance.identity.statements import DecisionStatement
from tasks.approvals_record import SubmitResult, read_record, submit_decision
from tasks.channels import publish_event
from tasks.prefect_rest import wake_run
from tasks.store import Store


class UnknownRunError(LookupError):
    """No approval request was ever opened for this run id."""


class IntakeResult(SubmitResult):
    """A submitted decision, and whether the waiting run could be woken to see it.

    ``wake_problem`` is set when the decision was recorded (it counts: the record is the truth) but
    the run could not be woken, e.g. the Prefect server is down; the run sees the decision when it
    is next woken (``clearance sweep`` wakes every waiting run whose request has closed).
    """

    wake_problem: str | None = None


def record_key_for_run(store: Store, run_id: str) -> str:
    """The approvals-record key of a run, from the run index written when its request opened."""
    index = store.get_json(run_index_key(run_id)) if store.head(run_index_key(run_id)) else None
    if index is None:
        raise UnknownRunError(f"run {run_id} has no approval request (not started, still in its gates, or a typo)")
    return index["record"]


def receive_decision(store: Store, run_id: str, *, principal: Principal | None, identity: str,
                     channel: Channel, vote: Vote, comment: str = "", artifact_digest: str | None = None,
                     channel_evidence: dict[str, Any] | None = None, dedupe_key: str | None = None,
                     wake: bool = True, assurance: Assurance = Assurance.CLAIMED,
                     signed: tuple[DecisionStatement, str] | None = None,
                     principals: Principals | None = None, record_key: str | None = None) -> IntakeResult:
    """Record one decision for ``run_id`` and wake the run if it changed the outcome.

    ``artifact_digest`` is what the person saw and decided on; ``None`` means the
    request's own digest (for channels whose message already shows and pins it). The decision
    is timed, and the deadline applied, by the store's clock, never this machine's. A wake-up that
    fails does not undo or hide the recorded decision: it is reported in ``wake_problem``. ``record_key``:
    the run's record key when the caller has already looked it up (:func:`record_key_for_run`).
    """
    key = record_key or record_key_for_run(store, run_id)
    if artifact_digest is None:
        artifact_digest = read_record(store, key)[0].request.artifact_digest
    result = submit_decision(store, key, principal=principal, identity=identity, channel=channel, vote=vote,
                             artifact_digest=artifact_digest, comment=comment, channel_evidence=channel_evidence,
                             dedupe_key=dedupe_key, now=store.server_time(), assurance=assurance, signed=signed,
                             principals=principals)
    result = IntakeResult(**{name: getattr(result, name) for name in SubmitResult.model_fields})
    # Wake first: the waiting run is what people wait for; the channels' messages can follow.
    if result.outcome_changed and wake:
        try:
            wake_run(run_id)
        except Exception as exc:  # noqa: BLE001 — the decision is recorded already; say why the run was not woken
            from tasks.outages import outage_of  # knows Prefect's exceptions: imported only when one is to be read

            outage = outage_of(exc)
            result.wake_problem = (f"{outage.service} {outage.problem}" if outage else
                                   f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            logging.getLogger("clearance.intake").warning("decision on run %s recorded, but the run was not woken: "
                                                          "%s", run_id, result.wake_problem)
    if result.accepted:
        # Every message that shows the tally (Slack, Jira…) follows, whichever channel decided.
        publish_event(event_for(result.record, "approvals-changed"))
    return result

"""Talking to Prefect about runs: waking a waiting promotion, reading a run's state, its heartbeats,
and marking a run whose process died as Crashed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import OrchestrationResult, SetStateStatus
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.states import Crashed, Scheduled

from clearance.core.clock import utcnow
from tasks import prefect_rest

#: The flow whose runs are promotions (flows/promote.py).
PROMOTE_FLOW = "promote-model"
#: What a running flow emits every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (prefect/flow_engine.py).
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
#: Prefect never sends heartbeats more often than this (prefect.flow_engine.MINIMUM_HEARTBEAT_INTERVAL).
MINIMUM_HEARTBEAT_SECONDS = 30


def ui_url() -> str:
    """The Prefect UI's base URL (PREFECT_UI_URL, else the API URL without ``/api``; empty when unknown)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    return (PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")).rstrip("/")


def run_url(run_id: str) -> str | None:
    """The Prefect UI page of a flow run, or ``None`` when no UI URL is known."""
    base = ui_url()
    return f"{base}/runs/flow-run/{run_id}" if base else None


def run_state(run_id: str) -> StateType | None:
    """The run's current state type."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return state.type if state else None


#: The wake-up itself goes through Prefect's REST API without Prefect's client (tasks/prefect_rest.py), so that
#: ``clearance approve`` need not import Prefect; re-exported for the sweep, the deadlines and supersession.
wake_run = prefect_rest.wake_run
ResumeRefused = prefect_rest.ResumeRefused


# --------------------------------------------------------------------------- liveness and crashes


@dataclass(frozen=True)
class RunInfo:
    """What the crash sweep needs to know of one promotion run."""

    run_id: str
    state: StateType
    #: When the run entered its current state (a RUNNING run's start or resumption).
    state_since: datetime | None
    state_message: str = ""
    #: Prefect's run count: one more each time the run enters RUNNING (a resumption after a pause, a retry).
    run_count: int = 1
    start_time: datetime | None = None
    end_time: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: What the worker started for it (a process worker: ``host:pid``), ``None`` before it started anything.
    infrastructure_pid: str | None = None

    @classmethod
    def of(cls, run: FlowRun) -> RunInfo:
        state = run.state
        return cls(run_id=str(run.id), state=state.type if state else StateType.PENDING,
                   state_since=_utc(state.timestamp) if state else None,
                   state_message=(state.message or "") if state else "", run_count=run.run_count,
                   start_time=_utc(run.start_time), end_time=_utc(run.end_time), parameters=dict(run.parameters),
                   infrastructure_pid=run.infrastructure_pid)


def _utc(moment: datetime | None) -> datetime | None:
    """A plain ``datetime`` in UTC: Prefect's own DateTime loses its zone in arithmetic (``- timedelta``)."""
    return datetime.fromtimestamp(moment.timestamp(), UTC) if moment is not None else None


def prefect_time() -> datetime:
    """Now by the Prefect server's clock (its ``Date`` header, whole seconds), the clock heartbeats are
    received by; the local clock only when the server sends no usable Date."""
    with get_client(sync_client=True) as client:
        response = client.hello()
    try:
        return parsedate_to_datetime(response.headers["date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError, IndexError):
        return utcnow()


#: The most runs the Prefect API returns per request.
_PAGE = 200


#: Flows whose runs write a model's ledger (each closes its own run; recovery closes what they left open).
LEDGER_FLOWS = (PROMOTE_FLOW, "rollback-model", "recertify-model")


def promotion_runs(states: set[StateType], *, ended_after: datetime | None = None, limit: int = 5000,
                   flows: tuple[str, ...] = (PROMOTE_FLOW,)) -> list[RunInfo]:
    """Runs of ``flows`` (default: promote-model) in one of ``states`` (and ended after ``ended_after`` when
    given), at most ``limit``."""
    run_filter = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=sorted(states))),
                               end_time=FlowRunFilterEndTime(after_=ended_after) if ended_after else None)
    found: list[RunInfo] = []
    with get_client(sync_client=True) as client:
        while len(found) < limit:
            page = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=list(flows))),
                                         flow_run_filter=run_filter, limit=min(_PAGE, limit - len(found)),
                                         offset=len(found))
            found += [RunInfo.of(run) for run in page]
            if len(page) < _PAGE:
                break
    return found


def heartbeats(run_id: str, since: datetime, limit: int = 20) -> list[datetime]:
    """When the Prefect server received the run's heartbeats since ``since``, newest first (at most ``limit``)."""
    window = EventOccurredFilter(since=since - timedelta(minutes=5), until=utcnow() + timedelta(days=1))
    query = EventFilter(occurred=window, event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                        resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]))
    with get_client(sync_client=True) as client:
        page = client.read_events(query, limit=limit)
    return sorted((datetime.fromtimestamp(event.received.timestamp(), UTC) for event in page.events),
                  reverse=True)


def heartbeat_seconds() -> int | None:
    """The heartbeat interval this process's Prefect settings give flow runs (``None``: heartbeats off)."""
    from prefect.settings import get_current_settings

    value = get_current_settings().flows.heartbeat_frequency
    return None if value is None else max(value, MINIMUM_HEARTBEAT_SECONDS)


def reschedule(run_id: str, message: str) -> tuple[bool, str]:
    """Propose Scheduled (now) for a run a dead worker left Pending, so any worker of its pool takes it again.

    Not forced: a run that moved on meanwhile (its process started after all) keeps its state. Returns whether
    Prefect accepted it, and its reason when not.
    """
    with get_client(sync_client=True) as client:
        result: OrchestrationResult[Any] = client.set_flow_run_state(
            UUID(run_id), Scheduled(scheduled_time=utcnow(), name="Rescheduled", message=message), force=False)
    accepted = result.status is SetStateStatus.ACCEPT
    reason = getattr(result.details, "reason", None) or result.status.value
    return accepted, "" if accepted else str(reason)


def mark_crashed(run_id: str, message: str) -> tuple[bool, str]:
    """Propose Crashed for a run (never forced: Prefect refuses it for a run already in a terminal state).

    Returns whether Prefect accepted it, and its reason when not.
    """
    with get_client(sync_client=True) as client:
        result: OrchestrationResult[Any] = client.set_flow_run_state(UUID(run_id), Crashed(message=message),
                                                                     force=False)
    accepted = result.status is SetStateStatus.ACCEPT
    reason = getattr(result.details, "reason", None) or result.status.value
    return accepted, "" if accepted else str(reason)

"""Talking to Prefect about runs: waking a waiting promotion, reading a run's state."""

from __future__ import annotations

import time
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import resume_flow_run


def ui_url() -> str:
    """The Prefect UI's base URL (PREFECT_UI_URL, else the API URL without ``/api``; empty when unknown)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    return (PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")).rstrip("/")


def run_url(run_id: str) -> str | None:
    """The Prefect UI page of a flow run, or ``None`` when no UI URL is known."""
    base = ui_url()
    return f"{base}/runs/flow-run/{run_id}" if base else None


class ResumeRefused(RuntimeError):
    """Prefect would not resume the run (it answered with a non-accepting status)."""


def run_state(run_id: str) -> StateType | None:
    """The run's current state type."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return state.type if state else None


def wake_run(run_id: str, wait_seconds: float = 30.0) -> bool:
    """Resume a waiting run so it re-reads its approvals record; ``True`` if it was resumed.

    The record is the truth and the flow re-reads it after every wake-up, so a wake-up
    only has to arrive once. It may come while the flow is between two waits (not yet
    paused): then we retry until it pauses or finishes, instead of losing the wake-up.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        state = run_state(run_id)
        if state in (StateType.PAUSED,):
            try:
                resume_flow_run(UUID(run_id), run_input={})
                return True
            except NotPausedError:
                pass  # raced with another resume or the flow just woke up; look again
            except FlowPauseTimeout as exc:
                raise ResumeRefused(f"run {run_id} can no longer be resumed: its wait expired") from exc
            except RuntimeError as exc:  # Prefect answers 200 with status REJECT and a reason
                # Between entering Paused and saving its input schema, a run rejects resumes with
                # "Run input schema not found": the pause is still being set up, so try again.
                if "schema not found" not in str(exc):
                    raise ResumeRefused(f"Prefect refused to resume run {run_id}: {exc}") from exc
        elif state in (StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED):
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)

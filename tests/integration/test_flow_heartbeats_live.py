"""A flow run with the mended heartbeat (tasks/flow_heartbeats.py) still sends Prefect's heartbeat event."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest


@pytest.mark.usefixtures("prefect_service")
def test_a_flow_run_sends_its_heartbeat_to_the_prefect_server():
    from prefect import flow, flow_engine
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    import flows  # noqa: F401  (mends the heartbeat)
    from tasks.flow_heartbeats import heartbeats as mended
    from tasks.prefect_runs import heartbeats

    assert flow_engine._send_heartbeats is mended

    @flow(name="heartbeat-probe")
    def probe() -> str:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        return str(context.flow_run.id)

    since = datetime.now(UTC)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        run_id = probe()
    received: list[datetime] = []
    deadline = time.monotonic() + 60
    while not received and time.monotonic() < deadline:  # the server stores events a little later
        received = heartbeats(run_id, since)
        time.sleep(0.5)
    assert len(received) == 1, f"heartbeats of {run_id}: {received}"

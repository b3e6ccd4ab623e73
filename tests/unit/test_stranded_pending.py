"""Which Pending runs the sweep may schedule again: only those no process can be running (tasks/crashes.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from prefect.client.schemas.objects import StateType

from tasks.crashes import no_process_runs
from tasks.prefect_runs import RunInfo

RUN = "0b0e6c1e-0000-4000-8000-000000000001"


def pending(infrastructure_pid: str | None) -> RunInfo:
    return RunInfo(run_id=RUN, state=StateType.PENDING, state_since=None, infrastructure_pid=infrastructure_pid)


def test_a_run_the_worker_started_nothing_for_may_be_rescheduled():
    assert no_process_runs(pending(None))


def test_a_live_process_running_that_run_is_never_raced():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             env=dict(os.environ, PREFECT__FLOW_RUN_ID=RUN))
    try:
        assert not no_process_runs(pending(str(child.pid)))
        assert not no_process_runs(pending(f"{socket.gethostname()}:{child.pid}"))
    finally:
        child.kill()
        child.wait()
    assert no_process_runs(pending(str(child.pid)))  # gone now


def test_a_pid_now_running_something_else_counts_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             env=dict(os.environ, PREFECT__FLOW_RUN_ID="another-run"))
    try:
        assert no_process_runs(pending(str(child.pid)))
    finally:
        child.kill()
        child.wait()


def test_another_hosts_process_is_left_to_that_host():
    assert not no_process_runs(pending("some-other-host:12345"))
    assert not no_process_runs(pending("namespace:job-name"))

"""Runs forked from ``clearance worker``'s template behave as Prefect's own process starts do.

On the session's real Prefect server, with a `clearance worker` on a pool of this module's own and a flow that
sleeps (tests/integration/warm_flows.py): the run's process is a fork of the template, not a new Python;
Prefect's cancellation reaches it (the worker signals its client, which forwards); a client killed with
SIGKILL takes its run with it, as a killed process would; a worker killed with SIGKILL leaves no template.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from uuid import UUID

import psutil
import pytest

from tests.integration.promotion_kit import REPO, start_pool_worker, stop_worker, wait_state

pytestmark = pytest.mark.integration
POOL = "clearance-warm-tests"


@pytest.fixture(scope="module")
def deployment(prefect_service):
    from prefect import flow

    from clearance.app.deployments import ensure_work_pool

    ensure_work_pool(POOL)
    loaded = flow.from_source(source=str(REPO), entrypoint="tests/integration/warm_flows.py:sleeper")
    loaded.deploy(name="sleeper", work_pool_name=POOL, job_variables={"working_dir": str(REPO)},  # type: ignore[union-attr]
                  build=False, push=False, print_next_steps=False)
    return "warm-sleeper/sleeper"


@pytest.fixture
def worker(deployment, tmp_path):
    """A `clearance worker`, once its template serves (before that, runs start cold)."""
    proc = start_pool_worker(POOL, tmp_path / "worker.log", clearance=True)
    deadline = time.monotonic() + 120
    while not serving(proc.pid):
        assert time.monotonic() < deadline, "the worker's template did not serve within 120 s"
        time.sleep(0.2)
    yield proc, tmp_path / "worker.log"
    if proc.poll() is None:
        stop_worker(proc)


def serving(worker_pid: int) -> psutil.Process | None:
    """The worker's template once its socket is there."""
    for child in psutil.Process(worker_pid).children():
        with contextlib.suppress(psutil.Error):
            argv = child.cmdline()
            if argv[-3:-1] == ["clearance.app.warm_start", "serve"] and Path(argv[-1]).exists():
                return child
    return None


def start_sleeper(deployment: str, marker: Path) -> tuple[str, psutil.Process]:
    """A run of the sleeper, and its process once it is running the flow."""
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, timeout=0, parameters={"marker": str(marker)})
    deadline = time.monotonic() + 180
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, "the sleeper did not start within 180 s"
        time.sleep(0.1)
    return str(run.id), psutil.Process(int(marker.read_text()))  # type: ignore[union-attr]


def gone(process: psutil.Process, within: float) -> bool:
    try:
        process.wait(timeout=within)
    except psutil.TimeoutExpired:
        return False
    return True


def test_a_run_is_a_fork_of_the_template_and_prefects_cancellation_reaches_it(worker, deployment, tmp_path):
    from prefect import get_client
    from prefect.states import Cancelling

    proc, log = worker
    run_id, run = start_sleeper(deployment, tmp_path / "pid")
    template = serving(proc.pid)
    assert template is not None and run.ppid() == template.pid  # forked, not a new Python started by the worker
    # ... from a template started with the settings the worker hands its runs, so the fork keeps Prefect's
    # settings and logging as the template set them up instead of reading them again (~0.1-0.15 CPU-s a run).
    assert f"flow run {run_id} forked from template {template.pid} (with its Prefect settings)" in \
        log.read_text(errors="replace")

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Cancelling(), force=True)
    assert gone(run, within=90), "the worker's cancellation did not end the forked run"
    assert wait_state(run_id, {"CANCELLED", "CRASHED", "FAILED", "COMPLETED"}, timeout=90) == "CANCELLED"


def test_a_killed_client_takes_its_run_with_it(worker, deployment, tmp_path):
    proc, _ = worker
    _, run = start_sleeper(deployment, tmp_path / "pid")
    [client] = [p for p in psutil.Process(proc.pid).children()
                if "clearance.app.warm_start" in p.cmdline() and "serve" not in p.cmdline()]
    client.send_signal(signal.SIGKILL)
    assert gone(run, within=30), "the run outlived its client (a cold run dies with its process)"


def test_a_killed_worker_leaves_no_template(worker, deployment, tmp_path):
    proc, _ = worker
    template = serving(proc.pid)
    assert template is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert gone(template, within=30), "the template outlived its worker"

"""``clearance worker``: Prefect's process worker for the pool and the sweep every N seconds, in one process.

The worker has to run anyway (it starts the promotions); the sweep rides along in a thread of it instead of
being a deployment that costs a new Python process and a flow run every minute (clearance/app/sweeper.py).
Beside it, a warm-start template (clearance/app/warm_start.py): each flow run is forked from a process that
imported Prefect and the flows once, instead of a new Python importing them again for every start and resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from clearance.app.warm_start import TemplateKeeper


def worker(pool: Annotated[str, typer.Option(help="Process work pool to poll for flow runs.")] = "clearance",
           sweep_every: Annotated[float, typer.Option(
               "--sweep-every", min=1, help="Seconds between two sweeps (deadlines, crashes, reminders, lapses)."
           )] = 60,
           name: Annotated[Optional[str], typer.Option(help="Worker name (default: Prefect's generated one).")
                           ] = None,
           limit: Annotated[Optional[int], typer.Option(
               min=1, help="At most this many flow runs at once in this worker (default: no limit). Each is a "
                           "process of ~150 MB while it runs; a run waiting for sign-off holds none.")] = None,
           with_healthcheck: Annotated[bool, typer.Option(
               "--with-healthcheck", help="Serve Prefect's worker health check on /health "
                                          "(PREFECT_WORKER_WEBSERVER_PORT).")] = False,
           warm_start: Annotated[bool, typer.Option(
               "--warm-start/--cold-start",
               help="Start each flow run (and each resume after a sign-off) as a fork of a process that has "
                    "imported Prefect and the flows already, instead of a new Python (see "
                    "clearance/app/warm_start.py). --cold-start: Prefect's own start.")] = True) -> None:
    """Run Prefect's process worker for POOL and, in the same process, the sweep every N seconds (what
    `clearance sweep` does: no flow run, no new process per sweep). SIGTERM stops both."""
    from clearance.app.sweeper import STOP_GRACE, SweepLoop, log_to_stderr
    from clearance.app.warm_start import TemplateKeeper

    log_to_stderr()
    sweeper = SweepLoop(sweep_every)
    sweeper.start()
    keeper = TemplateKeeper() if warm_start else None
    if keeper is not None:
        keeper.start()
    try:
        asyncio.run(_run_worker(pool, name, with_healthcheck, limit, keeper))
    finally:
        if keeper is not None:
            keeper.stop()
        sweeper.stop(wait=STOP_GRACE)


async def _run_worker(pool: str, name: str | None, with_healthcheck: bool, limit: int | None,
                      keeper: TemplateKeeper | None) -> None:
    """``prefect worker start --pool POOL --type process [--limit N]`` until SIGTERM or SIGINT."""
    from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS, PREFECT_WORKER_PREFETCH_SECONDS

    from clearance.app.warm_process_worker import WarmProcessWorker

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    process_worker = WarmProcessWorker(keeper, work_pool_name=pool, name=name,
                                   prefetch_seconds=PREFECT_WORKER_PREFETCH_SECONDS.value(), limit=limit,
                                   heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()))
    running = asyncio.create_task(process_worker.start(with_healthcheck=with_healthcheck, printer=typer.echo))
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():  # the worker gave up by itself: say why
        stop.cancel()
        running.result()
        return
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    typer.echo(f"Worker {process_worker.name!r} stopped.")

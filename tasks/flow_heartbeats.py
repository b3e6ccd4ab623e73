"""A flow run ends when its work ends, not up to a second later.

Prefect 3.9's flow engine sends a run's heartbeats from a thread that sleeps in one-second steps and checks
its stop flag between them; when the flow's body returns, the engine joins that thread, so every flow run —
a promotion, each resume of it, a re-certification, a subflow — waits for the current one-second step to end:
0.5 s on average, up to 1 s, of nothing (a trivial flow took 1.10 s against a Prefect server on loopback;
bench/RESULTS.md, "Flow-run heartbeat join"). The waits sit the run's process, its worker slot and whoever
waits for the run.

:func:`install` swaps in a heartbeat context that waits on the stop flag itself (``Event.wait``), so the
join returns at once; everything else is as Prefect does it: same interval and minimum, same event (built by
the engine's own methods), no heartbeat once the run is final, failures logged at debug, a daemon thread
with the caller's context (its settings and API URL). It swaps only the exact function it was written
against (a digest of its source): a Prefect release that changes it keeps its own, and :func:`install`
says so in its return value and a debug log line. ``flows/__init__.py`` calls it, so every process that
runs one of our flows — a worker's run, a warm-started fork, ``clearance promote --direct``, a test — has it.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

#: sha256 of ``inspect.getsource(prefect.flow_engine._send_heartbeats)`` in the Prefect releases whose
#: heartbeat thread sleeps in one-second steps (3.9.1).
KNOWN_SOURCES = frozenset({"83e152cb73a04e977ca181188e99b3d583c894892b5456043b2eb51e45dbe996"})

_ENGINE_METHODS = ("_build_heartbeat_event_template", "_emit_flow_run_heartbeat", "heartbeat_seconds")

#: Prefect's function that :func:`install` replaced (``None``: not replaced)
replaced: Any = None


def source_digest(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


@contextmanager
def heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Send the run's heartbeats while the body runs; stop the moment it ends."""
    from prefect.flow_engine import MINIMUM_HEARTBEAT_INTERVAL

    interval = engine.heartbeat_seconds
    if interval is None:  # heartbeats off (PREFECT_FLOWS_HEARTBEAT_FREQUENCY unset)
        yield
        return
    interval = max(interval, MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            run = engine.flow_run
            if run is not None and run.state is not None and run.state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:  # a lost heartbeat is not the run's failure; Prefect logs it the same way
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop.wait(interval)  # wakes the moment the body ends, not at the next whole second

    # the thread runs in the caller's context, so it sees the same settings (the API URL) as the run
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(beat,), daemon=True, name="flow-run-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)


def install() -> bool:
    """Use :func:`heartbeats` for every flow run of this process, if Prefect's is the one it replaces.

    Returns whether it is in use (also when an earlier call installed it)."""
    global replaced
    from prefect import flow_engine

    current = getattr(flow_engine, "_send_heartbeats", None)
    if current is heartbeats:
        return True
    engine = getattr(flow_engine, "FlowRunEngine", None)
    try:
        known = current is not None and source_digest(current) in KNOWN_SOURCES
    except (OSError, TypeError):  # no source to read (a zipped or compiled install): leave Prefect's
        known = False
    if not known or engine is None or not all(hasattr(engine, name) for name in _ENGINE_METHODS):
        log.debug("prefect.flow_engine._send_heartbeats is not the one clearance mends; Prefect's is kept")
        return False
    replaced = current
    flow_engine._send_heartbeats = heartbeats
    return True

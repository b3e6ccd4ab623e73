"""Prefect artifacts of a run, created beside its work instead of in its way.

A promotion creates ~20 Prefect artifacts (a Markdown result per gate, a ledger head for the witness after
every ledger append, the report and its evidence link), each a ``POST /artifacts/`` that a run used to wait
for (~45 ms each on the local SQLite server: 8–12 % of a promotion's wall time, sampled; bench/RESULTS.md
"Orchestration overhead"). Artifacts are a view for people and a second witness of the ledger heads; the
evidence itself is in the object store, and the run never reads an artifact back. So :func:`publish` hands
each one to a single background thread of the run's process (in order) and returns.

- The artifact belongs to the task run and flow run it was published from (their ids are taken at the call),
  and is created with the run's own Prefect client (the call's context is carried over to the thread).
- :func:`flushed` wraps every flow's body (flows/*.py): when the body ends — returned, raised, or suspended
  for its sign-off — it waits for the artifacts still on their way (up to :data:`FLUSH_SECONDS`), while the
  run's client is still open. So when a flow run is over, its artifacts are on the server, as before; those
  a server that does not answer leaves waiting past that are dropped, so the process does not wait at exit.
- An artifact that cannot be created is logged (as the witness always did) and never fails the run: the
  ledger in the object store is the truth, and ``clearance audit verify`` reads whatever heads exist. A
  process killed before its queue drained loses those artifacts, as it lost the one being created before.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

#: The longest a flow's end waits for its artifacts still on their way (the Prefect client's own retries
#: on a server that does not answer can take longer; what has not been created by then is logged).
FLUSH_SECONDS = 30.0

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "executor": None, "pending": []}


def _executor() -> ThreadPoolExecutor:
    """This process's publishing thread (a forked child makes its own: threads do not survive a fork)."""
    if _state["pid"] != os.getpid():
        _state.update(pid=os.getpid(), executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="artifacts"),
                      pending=[])
    return _state["executor"]


def _create(kind: str, fields: dict[str, Any], task_run_id: UUID | None, flow_run_id: UUID | None) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    # In the carried-over context get_client returns the run's open client (no new connection per artifact).
    client = get_client(sync_client=True)
    client.create_artifact(artifact=ArtifactCreate(type=kind, task_run_id=task_run_id, flow_run_id=flow_run_id,
                                                   **fields))


def publish(kind: str, *, key: str, data: str, description: str | None = None) -> None:
    """Create a Prefect artifact (``kind``: ``markdown`` or ``link`` data as Prefect formats it) for the
    current task or flow run, in the background; outside a run, nothing (an artifact needs a run)."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.utilities.context import get_task_and_flow_run_ids

    if not (FlowRunContext.get() or TaskRunContext.get()):
        return
    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    fields = {"key": key, "data": data, "description": description}
    context = contextvars.copy_context()
    with _lock:
        future = _executor().submit(context.run, _create, kind, fields, task_run_id, flow_run_id)
        future.add_done_callback(functools.partial(_report, key))
        _state["pending"] = [f for f in _state["pending"] if not f.done()] + [future]


def publish_markdown(key: str, markdown: str, description: str | None = None) -> None:
    """A Markdown artifact (what ``prefect.artifacts.create_markdown_artifact`` makes), in the background."""
    publish("markdown", key=key, data=markdown, description=description)


def publish_link(key: str, link: str, link_text: str, description: str | None = None) -> None:
    """A link artifact (what ``prefect.artifacts.create_link_artifact`` makes), in the background."""
    publish("markdown", key=key, data=f"[{link_text}]({link})", description=description)


def _report(key: str, future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        _log.warning("Prefect artifact %s was not created (%s: %s)", key, type(exc).__name__,
                     str(exc).splitlines()[0][:300] if str(exc) else "")


def flush(timeout: float = FLUSH_SECONDS) -> int:
    """Wait until this process's artifacts on their way are created (or ``timeout``); returns how many are not."""
    with _lock:
        pending = list(_state["pending"]) if _state["pid"] == os.getpid() else []
    if not pending:
        return 0
    _, not_done = wait(pending, timeout=timeout)
    if not_done:
        # Give up on those not started: the process would otherwise wait for each one's retries when it exits.
        dropped = sum(future.cancel() for future in not_done)
        _log.warning("%d Prefect artifact(s) not created after %.0f s (the Prefect server does not answer); %d of "
                     "them dropped, the evidence is in the object store", len(not_done), timeout, dropped)
    return len(not_done)


def flushed(fn: Callable[P, R]) -> Callable[P, R]:
    """A flow body that waits for its run's artifacts when it ends, however it ends (see the module docstring).

    Goes under ``@flow``; keeps the signature, name and docstring Prefect reads the flow's parameters from."""

    @functools.wraps(fn)
    def body(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            flush()

    return body

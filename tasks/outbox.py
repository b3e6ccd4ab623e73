"""A per-run outbox of idempotent operations for a channel, in the object store.

A channel that must not lose an update during an outage (Jira today; any channel can use it)
turns each promotion event into *operations* (``{"id": …, "kind": …, …}``) and appends them to a
queue in one JSON document (compare-and-swap). A flush then writes the queue in order through
the channel's ``apply`` function. What could not be written stays queued and is written on the
next flush — the next event of the run, a decision, or a poller that walks the pending index.

Races between processes (the flow, ``clearance serve``, the CLI, a poller):

- *One writer per run*: a flush first takes a lease in the document (``flusher``) with
  compare-and-swap; a process that finds a live lease leaves its operations queued for the holder
  and returns. The holder re-reads the queue after every operation and gives the lease back only
  with a compare-and-swap on a queue holding nothing new, so an operation queued before the release
  is written by the holder and one queued after it finds no lease. A lease whose holder died
  expires after ``lease_seconds`` (renewed after every operation).
- *Leaving the pending index*: S3 has no conditional delete, so a flusher that found the queue
  empty deletes the run's pending entry and then re-reads the queue; an operation queued meanwhile
  puts the entry back. Writers queue before they mark, so no queued operation is left unlisted.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

from clearance.core.clock import utcnow
from tasks.store import ObjectExists, PreconditionFailed, Store, read_json_state, update_json_state

log = logging.getLogger("clearance.outbox")

Op = dict[str, Any]
#: What ``apply`` returns for an operation: a dict merged into the document, ``None``, or ``DEFERRED``
#: (not possible yet — e.g. the ticket does not exist — so it stays queued).
DEFERRED = "deferred"
#: Upper bound of operations one flush applies (other writers may keep queueing while it runs).
MAX_OPS_PER_FLUSH = 500


class Outbox:
    """The queue of one run for one channel, stored at ``key``."""

    def __init__(self, store: Store, key: str, *, pending_key: Callable[[str], str],
                 lease_seconds: float, repeatable: Collection[str] = ()) -> None:
        self.store = store
        self.key = key
        self.pending_key = pending_key
        self.lease_seconds = lease_seconds
        #: Kinds that are never marked done: a newer one replaces the queued one and is written again
        #: (e.g. a tally comment edited in place).
        self.repeatable = frozenset(repeatable)

    # ----------------------------------------------------------------- the document

    def read(self) -> tuple[dict[str, Any], str | None]:
        """The document and its ETag (``({}, None)`` before the first event)."""
        return read_json_state(self.store, self.key)

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` with compare-and-swap (re-read and re-applied after a lost race)."""
        return update_json_state(self.store, self.key, change, attempts=50)

    def enqueue(self, info: dict[str, Any], ops: list[Op], *, first: Op | None = None) -> dict[str, Any]:
        """Append ``ops`` (one already done is skipped; a queued one is replaced); ``info`` fills unset fields.

        ``first``, when given and not done yet, is kept at the head of the queue (e.g. "create the ticket").
        """

        def change(state: dict[str, Any]) -> None:
            for name, value in info.items():
                state.setdefault(name, value)
            queue = state.setdefault("queue", [])
            done = set(state.setdefault("done", []))
            if first is not None and first["id"] not in done and not any(op["id"] == first["id"] for op in queue):
                queue.insert(0, first)
            for op in ops:
                if op["id"] in done and op["kind"] not in self.repeatable:
                    continue
                existing = next((i for i, q in enumerate(queue) if q["id"] == op["id"]), None)
                if existing is None:
                    queue.append(op)
                else:
                    queue[existing] = op

        return self.update(change)

    # ----------------------------------------------------------------- flushing

    def flush(self, apply: Callable[[Op, dict[str, Any]], Any],
              permanent: tuple[type[Exception], ...] = ()) -> tuple[dict[str, Any], list[str]]:
        """Write the queue in order with ``apply``; returns the document and the permanent problems.

        An exception in ``permanent`` drops its operation (recorded under ``errors``); any other
        exception stops the flush, leaves the rest queued, marks the run pending and propagates.
        When another process holds the lease this returns at once: the holder writes what was queued.
        """
        token = self._acquire_lease()
        if token is None:
            state, _ = self.read()
            if state.get("queue"):
                self.mark_pending(state)  # in case the holder dies before it gets to them
            return state, []
        state, _ = self.read()
        problems: list[str] = []
        attempted: list[Op] = []
        try:
            while True:
                for _ in range(MAX_OPS_PER_FLUSH):
                    state, _ = self.read()
                    # The first op not yet tried here; a replaced op (a newer tally) is a new one.
                    op = next((q for q in state.get("queue", []) if q not in attempted), None)
                    if op is None:
                        break
                    attempted.append(op)
                    try:
                        outcome = apply(op, state)
                    except permanent as exc:
                        problems.append(str(exc))
                        self._finish(op, error=str(exc), lease=token)
                        continue
                    if outcome == DEFERRED:
                        continue
                    self._finish(op, result=outcome, lease=token)
                if self._release_lease(token, attempted):
                    break
        except BaseException:
            self._release_lease(token, None)
            if state.get("queue"):
                self.mark_pending(state)
            raise
        state, _ = self.read()
        if state.get("queue"):
            self.mark_pending(state)
        elif state.get("run_id"):
            self._clear_pending(state["run_id"])
        return state, problems

    def _acquire_lease(self) -> str | None:
        """Take the run's flush lease with compare-and-swap; ``None`` while another process holds a live one."""
        token = uuid.uuid4().hex
        for _ in range(50):
            state, etag = self.read()
            lease = state.get("flusher")
            if lease and time.time() - float(lease.get("at", 0)) < self.lease_seconds:
                return None
            if lease:
                log.warning("outbox: taking over the expired flush lease of %s", self.key)
            state["flusher"] = {"owner": token, "at": time.time()}
            try:
                self.store.put_if_match(self.key, json.dumps(state, sort_keys=True).encode(), etag)
            except PreconditionFailed:
                continue
            return token
        return None

    def _release_lease(self, token: str, attempted: list[Op] | None) -> bool:
        """Give the lease back, unless the queue holds an op not in ``attempted`` (then ``False``: go on).

        ``attempted=None`` releases whatever is queued (this flush is giving up).
        """
        for _ in range(50):
            state, etag = self.read()
            if (state.get("flusher") or {}).get("owner") != token:
                return True  # expired and taken over: the new holder carries on
            if attempted is not None and any(q not in attempted for q in state.get("queue", [])):
                return False
            state.pop("flusher", None)
            try:
                self.store.put_if_match(self.key, json.dumps(state, sort_keys=True).encode(), etag)
            except PreconditionFailed:
                continue
            return True
        log.warning("outbox: could not release the flush lease of %s; it expires by itself", self.key)
        return True

    def _finish(self, op: Op, result: Any = None, error: str | None = None, lease: str | None = None) -> None:
        def change(state: dict[str, Any]) -> None:
            if lease and (state.get("flusher") or {}).get("owner") == lease:
                state["flusher"]["at"] = time.time()  # renewed: this flush is alive
            state["queue"] = [q for q in state.get("queue", []) if q != op]
            if op["kind"] not in self.repeatable and op["id"] not in state.setdefault("done", []):
                state["done"].append(op["id"])
            if isinstance(result, dict):
                state.update(result)
            if error:
                state.setdefault("errors", []).append({"op": op["id"], "error": error, "at": utcnow().isoformat()})

        self.update(change)

    # ----------------------------------------------------------------- the pending index

    def mark_pending(self, state: dict[str, Any]) -> None:
        """List the run in the pending index (a poller flushes what is listed)."""
        run_id = state.get("run_id")
        if not run_id:
            return
        try:
            self.store.put_if_absent(self.pending_key(run_id), json.dumps({"state": self.key}).encode(),
                                     content_type="application/json")
        except ObjectExists:
            pass

    def _clear_pending(self, run_id: str) -> None:
        """Take the run off the pending index, unless an operation was queued meanwhile.

        Object stores have no portable conditional delete, so the removal is made conditional on the
        queue instead: delete, then re-read the queue (written with compare-and-swap); if another
        process queued an operation since this flush saw it empty, list the run again.
        """
        self.store.delete(self.pending_key(run_id))
        state, _ = self.read()
        if state.get("queue"):
            self.mark_pending(state)


def pending_state_keys(store: Store, prefix: str) -> list[str]:
    """The outbox keys listed in a pending index (an entry that vanished meanwhile was flushed by someone)."""
    keys = []
    for index in store.list_keys(prefix):
        try:
            keys.append(store.get_json(index)["state"])
        except Exception:  # noqa: BLE001, S112 — a vanished index entry was flushed by someone else
            continue
    return keys

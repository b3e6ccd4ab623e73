"""Know the store: make sure it enforces conditional writes before relying on them.

Everything that keeps two writers apart in clearance is a conditional write the *server* enforces:
a ledger entry is created with ``If-None-Match: *`` (the loser of a race gets 412 and re-reads),
the production pointer and the approvals record are swapped with ``If-Match: <etag>``. A store
that accepts those headers and ignores them — a gateway or proxy that drops them, some S3-compatible
servers — answers 200 to both racers: two promotions of one model are both reported promoted, the
pointer and a ledger entry are silently overwritten, and nothing downstream can tell.

So before promoting and before appending to a ledger, :func:`require_conditional_writes` probes the
store once per endpoint and bucket (per process; a passed probe is trusted for
``CLEARANCE_S3_PROBE_TTL_SECONDS``, then made again; a failed one is never cached): it writes a probe
object create-only twice (the second must be refused), swaps it with its current ETag (must succeed)
and with the now stale one (must be refused), checks the refused writes changed nothing, and deletes
it. A store that ignores either header raises :class:`ConditionalWritesIgnored`, naming the endpoint
and what it ignored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

from clearance.core.keys import store_probe_key
from clearance.settings import get_settings
from tasks.store import ConditionalWritesIgnored, ObjectExists, ObjectStoreError, PreconditionFailed, Store

__all__ = ["ConditionalWritesIgnored", "forget_probes", "probe_conditional_writes", "require_conditional_writes",
           "trust_earlier_pass"]

log = logging.getLogger("clearance.store")

_lock = threading.Lock()
#: (endpoint, bucket) → monotonic time the probe passed.
_passed: dict[tuple[str, str], float] = {}
#: One lock per (endpoint, bucket), so concurrent callers wait for one probe instead of each making one.
_probing: dict[tuple[str, str], threading.Lock] = {}


def _where(store: Store) -> tuple[str, str]:
    """The cache key of a store: its endpoint and bucket (a store without an endpoint: the object itself)."""
    endpoint = getattr(store, "endpoint", None) or f"{type(store).__name__} at {id(store):#x}"
    return str(endpoint), store.bucket


def _body(probe_id: str, step: str) -> bytes:
    return json.dumps({"clearance": "store probe: are If-None-Match and If-Match enforced?", "probe": probe_id,
                       "step": step}, sort_keys=True).encode()


def probe_conditional_writes(store: Store) -> list[str]:
    """What the store failed to enforce (empty: both headers enforced); probes now, never cached.

    Raises :class:`tasks.store.ObjectStoreError` when the store cannot be asked at all (unreachable
    for the whole retry window, access denied, 501): no answer is not a pass.
    """
    probe_id = uuid.uuid4().hex
    key = store_probe_key(probe_id)
    ignored: list[str] = []
    try:
        store.put_if_absent(key, _body(probe_id, "first"), content_type="application/json")
        try:
            store.put_if_absent(key, _body(probe_id, "second"), content_type="application/json")
            ignored.append("If-None-Match (a second create-only write of one key was accepted, not refused with "
                           "412)")
        except ObjectExists:
            pass
        info = store.head(key)
        if info is None:
            raise ObjectStoreError(f"store probe: {store.url(key)} vanished right after it was written",
                                   key=key, bucket=store.bucket)
        stale = info.etag
        try:
            store.put_if_match(key, _body(probe_id, "third"), stale)
        except PreconditionFailed:
            ignored.append("If-Match with the current ETag (a compare-and-swap that should win was refused)")
        try:
            store.put_if_match(key, _body(probe_id, "fourth"), stale)
            ignored.append("If-Match (a write with a stale ETag was accepted, not refused with 412)")
        except PreconditionFailed:
            pass
        if not ignored and store.get_bytes(key)[0] != _body(probe_id, "third"):
            ignored.append("the refusals (writes answered 412 changed the object anyway)")
    finally:
        try:
            store.delete(key)
        except ObjectStoreError as exc:
            log.warning("store probe: could not delete %s: %s", store.url(key), exc)
    return ignored


def require_conditional_writes(store: Store) -> None:
    """Return when ``store`` is known to enforce If-None-Match and If-Match; else raise.

    Probes once per (endpoint, bucket) in this process and trusts a pass for
    ``CLEARANCE_S3_PROBE_TTL_SECONDS``. Raises :class:`ConditionalWritesIgnored` naming the endpoint
    and what it ignored, or the store's own error when it could not be probed.
    """
    where = _where(store)
    ttl = get_settings().s3_probe_ttl_seconds
    with _lock:
        passed = _passed.get(where)
        if passed is not None and time.monotonic() - passed < ttl:
            return
        probing = _probing.setdefault(where, threading.Lock())
    with probing:
        with _lock:  # another caller may have probed while this one waited
            passed = _passed.get(where)
            if passed is not None and time.monotonic() - passed < ttl:
                return
        ignored = probe_conditional_writes(store)
        if ignored:
            endpoint, bucket = where
            raise ConditionalWritesIgnored(
                f"the object store at {endpoint} (bucket {bucket}) does not enforce conditional writes: it ignored "
                + "; and ".join(ignored) + ". Clearance refuses to promote or to append to a ledger on it: racing "
                "writers would both be told they won (two promotions reported promoted, the production pointer "
                "and ledger entries silently overwritten). Remove whatever drops the If-None-Match / If-Match "
                "headers (a proxy or gateway), or use a store that enforces them.",
                bucket=bucket, code="ConditionalWritesIgnored")
        with _lock:
            _passed[where] = time.monotonic()
        log.info("store probe: %s (bucket %s) enforces If-None-Match and If-Match", *where)


def trust_earlier_pass(store: Store, passed_at: float) -> bool:
    """Trust a pass another process of the same run recorded at ``passed_at`` (wall-clock seconds): a resumed
    run's first process probed the store, and the run's cached check says so. Trusted for what is left of
    ``CLEARANCE_S3_PROBE_TTL_SECONDS`` after it; ``False`` (nothing trusted) when that is spent or the time is
    in the future."""
    age = time.time() - passed_at
    if not 0 <= age < get_settings().s3_probe_ttl_seconds:
        return False
    where = _where(store)
    with _lock:
        _passed[where] = max(_passed.get(where, float("-inf")), time.monotonic() - age)
    return True


def forget_probes() -> None:
    """Drop every cached pass (the next call probes again)."""
    with _lock:
        _passed.clear()

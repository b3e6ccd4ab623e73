"""The object store as the rest of clearance sees it: the :class:`Store` protocol, its errors, its values.

Two implementations satisfy :class:`Store`: :class:`tasks.object_store.ObjectStore` (S3 through boto3,
the product) and ``tests/fakes/memory_store.MemoryStore`` (in memory, for unit tests of the channels).
Code that only needs to read and write objects takes a ``Store``; code that builds one from the
settings uses :func:`tasks.wiring.object_store`.

The store's clock (:meth:`Store.server_time`) is the one approval deadlines are judged by.

Errors name the bucket and key, never the credentials. "Not implemented" is :class:`NotSupported`:
callers treat it as *unknown*, never as success.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

# --------------------------------------------------------------------------- errors


class ObjectStoreError(RuntimeError):
    """An object-store operation failed; carries the bucket and key, never credentials."""

    def __init__(self, message: str, *, key: str | None = None, bucket: str | None = None,
                 code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.bucket = bucket
        self.code = code
        self.status = status


class ObjectNotFound(ObjectStoreError):
    """The key (or the bucket) does not exist."""


class PreconditionFailed(ObjectStoreError):
    """A conditional write lost: the object changed (IfMatch) or already exists (IfNoneMatch)."""


class ObjectExists(PreconditionFailed):
    """A create-only write found the key already taken; the existing object is untouched."""


class ChecksumMismatch(ObjectStoreError):
    """Bytes read or written do not have the SHA-256 they must have."""


class AccessDenied(ObjectStoreError):
    """The server refused the credentials or the signature (403)."""


class NotSupported(ObjectStoreError):
    """The server does not implement the operation (501): the outcome is unknown, never success."""


class StoreUnavailable(ObjectStoreError):
    """The store did not answer (connection refused or closed, timeouts, 500/502/503/504, SlowDown) for the
    whole retry window (``CLEARANCE_S3_RETRY_SECONDS``); the message names the endpoint. The outcome of a write
    is unknown: read the object before relying on it."""


class ConditionalWritesIgnored(ObjectStoreError):
    """The store accepts ``If-None-Match`` / ``If-Match`` writes without enforcing them (a gateway or proxy that
    drops the headers, a server that ignores them): create-only appends and compare-and-swap mean nothing there,
    so clearance refuses to promote or to append to a ledger (``tasks/store_probe.py``)."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of one object (from HeadObject)."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None
    content_type: str | None = None
    #: Hex SHA-256 of the whole object as stored by the server, when it has one
    #: (``None`` for objects written without it, or multipart uploads whose checksum is
    #: a checksum of part checksums).
    checksum_sha256: str | None = None


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart upload that was started and neither completed nor aborted (ListMultipartUploads).

    Its parts take space but are no object: nothing reads them. A process killed during a copy
    leaves one behind (``tasks/crashes.py`` aborts them).
    """

    key: str
    upload_id: str
    #: When the upload began, by the server's clock (timezone-aware UTC; ``None`` if not told).
    initiated: datetime | None


# --------------------------------------------------------------------------- the protocol


@runtime_checkable
class Store(Protocol):
    """What clearance needs of an object store: reads, create-only writes, compare-and-swap, a verified copy,
    and the server's clock."""

    bucket: str

    def url(self, key: str) -> str:
        """``s3://bucket/key`` of a key (for messages and evidence)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of ``key``, or ``None`` when it does not exist."""
        ...

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        """The whole object and its ETag; raises :class:`ObjectNotFound`."""
        ...

    def get_json(self, key: str) -> Any:
        """The object parsed as JSON; raises :class:`ObjectNotFound`."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start``."""
        ...

    def iter_chunks(self, key: str, chunk_size: int = ..., *, if_match: str | None = None) -> Iterator[bytes]:
        """The object in chunks (one version)."""
        ...

    def sha256_of(self, key: str) -> tuple[str, int]:
        """Hex SHA-256 and size of the object, streamed."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...

    def put_if_absent(self, key: str, body: bytes, content_type: str = ...) -> str:
        """Create ``key`` only if it does not exist; raises :class:`ObjectExists`."""
        ...

    def put_if_match(self, key: str, body: bytes, expected_etag: str | None, content_type: str = ...) -> str:
        """Replace ``key`` only if its ETag is still ``expected_etag`` (``None``: only if absent)."""
        ...

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error when absent)."""
        ...

    def copy_verified(self, src_key: str, dst_key: str, expected_sha256: str) -> str:
        """Copy to a new ``dst_key`` whose content must hash to ``expected_sha256``; never overwrites."""
        ...

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        """Unfinished multipart uploads whose key starts with ``prefix``, oldest first."""
        ...

    def abort_multipart_uploads(self, prefix: str, *, initiated_before: datetime | None = None
                                ) -> list[MultipartUpload]:
        """Abort the unfinished multipart uploads under ``prefix`` (only those begun before ``initiated_before``
        when given); returns those that are gone now (an upload already gone counts)."""
        ...

    def server_time(self) -> datetime:
        """The store's own clock (timezone-aware UTC), read from the server now.

        Deadlines are decided against it and decisions are timed by it, because it is a clock the
        person deciding does not control (their machine's clock they do). Raises
        :class:`ObjectStoreError` when the server does not tell its time: never the local clock instead.
        """
        ...


# --------------------------------------------------------------------------- small JSON documents with CAS


def read_json_state(store: Store, key: str) -> tuple[dict[str, Any], str | None]:
    """A small JSON document and its ETag; ``({}, None)`` when it does not exist yet."""
    if store.head(key) is None:
        return {}, None
    body, etag = store.get_bytes(key)
    return json.loads(body), etag


def update_json_state(store: Store, key: str, change: Callable[[dict[str, Any]], None],
                      attempts: int = 30) -> dict[str, Any]:
    """Apply ``change`` to a JSON document with compare-and-swap, re-reading and re-applying it
    when another writer got there first; returns the document as written.

    Works with any store offering ``head``, ``get_bytes`` and ``put_if_match`` (test doubles too).
    """
    for _ in range(attempts):
        state, etag = read_json_state(store, key)
        change(state)
        try:
            store.put_if_match(key, json.dumps(state, sort_keys=True).encode(), etag)
        except PreconditionFailed:
            continue
        return state
    raise PreconditionFailed(f"{key}: {attempts} concurrent writers won the compare-and-swap first", key=key)

"""An in-memory :class:`tasks.store.Store` with ETags, for unit tests of everything that reads and writes objects.

Its clock (:meth:`MemoryStore.server_time`) is its own, like an S3 server's: the real time by default (whole
seconds, like S3's ``Date`` header), or whatever a test sets with :meth:`MemoryStore.set_time`. Faking
``clearance.core.clock.utcnow`` does not move it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.store import (
    ChecksumMismatch,
    MultipartUpload,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
)


class MemoryStore:
    """Keys → bytes with ETags; conditional writes behave like S3's IfMatch / IfNoneMatch."""

    bucket = "memory"

    def __init__(self, now: datetime | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()
        #: The store's clock when a test set it; ``None``: the real time.
        self.now: datetime | None = now
        #: Unfinished multipart uploads by upload id (:meth:`start_multipart_upload` makes one).
        self.uploads: dict[str, MultipartUpload] = {}

    def server_time(self) -> datetime:
        """The store's clock: the time a test set, else the real time in whole seconds (as S3's ``Date``)."""
        if self.now is not None:
            return self.now
        return datetime.now(UTC).replace(microsecond=0)

    def set_time(self, moment: datetime) -> None:
        """Set the store's clock (timezone-aware); it stays there until set or advanced again."""
        if moment.tzinfo is None:
            raise ValueError("the store's clock is timezone-aware")
        self.now = moment

    def advance(self, delta: timedelta) -> None:
        """Move the store's clock forward (from the real time when it was not set)."""
        self.now = self.server_time() + delta

    @staticmethod
    def _etag(body: bytes) -> str:
        return '"' + hashlib.md5(body).hexdigest() + '"'

    def head(self, key: str) -> ObjectInfo | None:
        body = self.objects.get(key)
        return None if body is None else ObjectInfo(key=key, size=len(body), etag=self._etag(body),
                                                    last_modified=None)

    def url(self, key: str) -> str:
        return f"memory://{key}"

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        if key not in self.objects:
            raise ObjectNotFound(f"get {key}: NoSuchKey", key=key, status=404)
        body = self.objects[key]
        return body, self._etag(body)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        return self.get_bytes(key)[0][start:start + max(length, 0)]

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20, *, if_match: str | None = None) -> Iterator[bytes]:
        body, etag = self.get_bytes(key)
        if if_match is not None and if_match != etag:
            raise PreconditionFailed(f"{key} changed", key=key, status=412)
        for start in range(0, len(body), chunk_size):
            yield body[start:start + chunk_size]

    def sha256_of(self, key: str) -> tuple[str, int]:
        body = self.get_bytes(key)[0]
        return hashlib.sha256(body).hexdigest(), len(body)

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key)[0])

    def put_if_absent(self, key: str, body: bytes, content_type: str = "") -> str:
        with self.lock:
            if key in self.objects:
                raise ObjectExists(f"{key} exists", key=key, status=412)
            self.objects[key] = body
        return self._etag(body)

    def put_if_match(self, key: str, body: bytes, expected_etag: str | None, content_type: str = "") -> str:
        with self.lock:
            current = self.objects.get(key)
            if (expected_etag is None and current is not None) or (
                    expected_etag is not None and (current is None or self._etag(current) != expected_etag)):
                raise PreconditionFailed(f"{key} changed", key=key, status=412)
            self.objects[key] = body
        return self._etag(body)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def copy_verified(self, src_key: str, dst_key: str, expected_sha256: str) -> str:
        body = self.get_bytes(src_key)[0]
        if hashlib.sha256(body).hexdigest() != expected_sha256.lower().removeprefix("sha256:"):
            raise ChecksumMismatch(f"source {src_key} does not have the expected sha256", key=src_key)
        return self.put_if_absent(dst_key, body)

    def start_multipart_upload(self, key: str) -> MultipartUpload:
        """Begin a multipart upload that is never completed (what a copy killed midway leaves)."""
        upload = MultipartUpload(key=key, upload_id=uuid.uuid4().hex, initiated=self.server_time())
        with self.lock:
            self.uploads[upload.upload_id] = upload
        return upload

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        with self.lock:
            found = [u for u in self.uploads.values() if u.key.startswith(prefix)]
        return sorted(found, key=lambda u: (u.initiated or datetime.min.replace(tzinfo=UTC), u.key))

    def abort_multipart_uploads(self, prefix: str, *, initiated_before: datetime | None = None
                                ) -> list[MultipartUpload]:
        gone = []
        for upload in self.list_multipart_uploads(prefix):
            if initiated_before is not None and (upload.initiated is None or upload.initiated >= initiated_before):
                continue
            with self.lock:
                self.uploads.pop(upload.upload_id, None)
            gone.append(upload)
        return gone

"""An in-memory stand-in for :class:`tasks.object_store.ObjectStore` (the few methods channels use), with ETags."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from tasks.object_store import ObjectExists, ObjectInfo, ObjectNotFound, PreconditionFailed


class MemoryStore:
    """Keys → bytes with ETags; conditional writes behave like S3's IfMatch / IfNoneMatch."""

    bucket = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()

    @staticmethod
    def _etag(body: bytes) -> str:
        return '"' + hashlib.md5(body).hexdigest() + '"'

    def head(self, key: str) -> ObjectInfo | None:
        body = self.objects.get(key)
        return None if body is None else ObjectInfo(key=key, size=len(body), etag=self._etag(body),
                                                    last_modified=None)

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        if key not in self.objects:
            raise ObjectNotFound(f"get {key}: NoSuchKey", key=key, status=404)
        body = self.objects[key]
        return body, self._etag(body)

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

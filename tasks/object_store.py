"""The object store (S3 API via boto3): the only module in clearance that talks to S3.

:class:`ObjectStore` satisfies :class:`tasks.store.Store`; the errors and values it raises and
returns live there (re-exported here for callers that build the store themselves).

Plain typed methods on :class:`ObjectStore` (not Prefect tasks), so flows, tasks, the CLI
and the approval endpoints share one implementation of the few operations the product
needs: reads, streaming SHA-256, create-only writes (``IfNoneMatch='*'``), compare-and-swap
(``IfMatch``), a verified, never-overwriting copy, and the server's clock (the ``Date`` header).

Every write sends a ``ChecksumSHA256`` so the server rejects bytes damaged in transit.
Verified against SeaweedFS 4.48 (``weed mini``): it honours ``IfNoneMatch='*'`` and
``IfMatch`` on PutObject, ``IfNoneMatch`` on CompleteMultipartUpload and on CopyObject,
rejects a wrong ``ChecksumSHA256`` (400 ``BadDigest``, nothing stored, also per part), and
answers 501 to PublicAccessBlock. The tests in ``tests/integration/test_object_store.py``
keep those facts checked.

Errors are translated into :class:`ObjectStoreError` subclasses that name the bucket and
key, never the credentials. "Not implemented" is :class:`NotSupported`: callers treat it as
*unknown*, never as success.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tasks.store import (
    AccessDenied,
    ChecksumMismatch,
    NotSupported,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    PreconditionFailed,
    read_json_state,
    update_json_state,
)

__all__ = [
    "AccessDenied", "ChecksumMismatch", "NotSupported", "ObjectExists", "ObjectInfo", "ObjectNotFound",
    "ObjectStore", "ObjectStoreError", "PreconditionFailed", "read_json_state", "update_json_state",
]

if TYPE_CHECKING:
    from clearance.settings import Settings

#: Objects up to this size are copied with one PutObject; bigger ones as a multipart upload
#: of parts this size, so a large artifact is never held in memory whole.
PART_SIZE = 8 * 1024 * 1024
#: Read size of streaming reads (sha256_of, iter_chunks).
CHUNK_SIZE = 1024 * 1024


# --------------------------------------------------------------------------- S3 encodings


def sha256_b64(data: bytes) -> str:
    """Base64 SHA-256, the form S3 wants in ``ChecksumSHA256``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _b64_to_hex(value: str | None) -> str | None:
    """Server checksum (base64) → hex; ``None`` for composite (``…-N``) or malformed values."""
    if not value or "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def _quoted(etag: str) -> str:
    """ETags as S3 sends them in headers: with double quotes (CopyObject's body omits them)."""
    return etag if etag.startswith('"') else f'"{etag}"'


# --------------------------------------------------------------------------- the store


class ObjectStore:
    """A boto3 S3 client bound to one bucket, optionally under a key prefix.

    ``key_prefix`` is prepended to every key and stripped from listed keys, so tests can
    give each case its own namespace in one shared bucket while callers keep using the
    product's own keys (``candidates/…``, ``production/…``).
    """

    def __init__(self, client: Any, bucket: str, key_prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.key_prefix = key_prefix

    def __repr__(self) -> str:  # the client holds credentials: never show more than this
        return f"ObjectStore(bucket={self.bucket!r}, key_prefix={self.key_prefix!r})"

    @classmethod
    def from_settings(cls, settings: Settings, *, key_prefix: str = "") -> ObjectStore:
        """Build the store from :class:`clearance.settings.Settings` (endpoint, region, keys, bucket)."""
        config = Config(
            s3={"addressing_style": "path"},  # SeaweedFS/MinIO on 127.0.0.1 have no per-bucket DNS names
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        secret = settings.s3_secret_access_key
        key_id = settings.s3_access_key_id
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=key_id.get_secret_value() if key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        return cls(client, settings.bucket, key_prefix=key_prefix)

    # ----------------------------------------------------------------- helpers

    def _k(self, key: str) -> str:
        return self.key_prefix + key

    def url(self, key: str) -> str:
        """``s3://bucket/key`` of a key (for messages and evidence)."""
        return f"s3://{self.bucket}/{self._k(key)}"

    def _error(self, op: str, key: str, err: ClientError | BotoCoreError,
               conflict: type[PreconditionFailed] = PreconditionFailed) -> ObjectStoreError:
        """Translate a botocore error into one of ours (message names bucket and key only)."""
        if isinstance(err, BotoCoreError):
            return ObjectStoreError(f"{op} {self.url(key)}: {type(err).__name__}: {err}",
                                    key=key, bucket=self.bucket)
        info = err.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{op} {self.url(key)}: {code or 'error'} (HTTP {status})"
        kwargs: dict[str, Any] = {"key": key, "bucket": self.bucket, "code": code, "status": status}
        if status == 412 or code in {"PreconditionFailed", "ConditionalRequestConflict"} or status == 409:
            return conflict(message, **kwargs)
        if status == 404 or code in {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}:
            return ObjectNotFound(message, **kwargs)
        if status == 501 or code == "NotImplemented":
            return NotSupported(message + " — not implemented by this server; outcome unknown", **kwargs)
        if status == 403 or code in {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"}:
            return AccessDenied(message, **kwargs)
        if code in {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}:
            return ChecksumMismatch(message + " — the server rejected the checksum", **kwargs)
        return ObjectStoreError(message, **kwargs)

    # ----------------------------------------------------------------- the server's clock

    def server_time(self) -> datetime:
        """The S3 server's clock: the ``Date`` header of a HeadBucket sent now (1-second resolution).

        Nothing is cached, so the answer is never older than this round trip. When the request fails
        or the answer has no usable ``Date``, :class:`ObjectStoreError` says so: the local clock, which
        whoever runs this process controls, is never used instead.
        """
        op = "server time from"
        try:
            response = self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            translated = self._error(op, "", err)
            raise type(translated)(f"{translated} — cannot read the object store's clock, and the local clock "
                                   "is not used in its place", key=None, bucket=self.bucket,
                                   code=translated.code, status=translated.status) from err
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        raw = next((str(value) for name, value in headers.items() if str(name).lower() == "date"), "")
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            raise ObjectStoreError(f"{op} {self.url('')}: the server sent no usable Date header ({raw!r}); "
                                   "the local clock is not used in its place", bucket=self.bucket) from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    # ----------------------------------------------------------------- reads

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of ``key``, or ``None`` when it does not exist."""
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._k(key), ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as err:
            translated = self._error("head", key, err)
            if isinstance(translated, ObjectNotFound) and translated.code != "NoSuchBucket":
                return None
            raise translated from err
        return ObjectInfo(
            key=key,
            size=int(r.get("ContentLength", 0)),
            etag=_quoted(r["ETag"]),
            last_modified=r.get("LastModified"),
            content_type=r.get("ContentType"),
            checksum_sha256=_b64_to_hex(r.get("ChecksumSHA256")),
        )

    def _get(self, key: str, *, if_match: str | None = None, range_: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if if_match:
            kwargs["IfMatch"] = if_match
        if range_:
            kwargs["Range"] = range_
        try:
            return self.client.get_object(**kwargs)
        except (ClientError, BotoCoreError) as err:
            raise self._error("get", key, err) from err

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        """The whole object and its ETag (for a later :meth:`put_if_match`); raises :class:`ObjectNotFound`."""
        r = self._get(key)
        with r["Body"] as body:
            return body.read(), _quoted(r["ETag"])

    def get_json(self, key: str) -> Any:
        """The object parsed as JSON; raises :class:`ObjectNotFound`."""
        return json.loads(self.get_bytes(key)[0])

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end of the object)."""
        if length <= 0:
            return b""
        info = self.head(key)
        if info is None:
            raise ObjectNotFound(f"get {self.url(key)}: NoSuchKey", key=key, bucket=self.bucket, status=404)
        if start >= info.size:  # a Range past the end is a 416, but "no bytes" is the honest answer
            return b""
        r = self._get(key, range_=f"bytes={start}-{start + length - 1}")
        with r["Body"] as body:
            return body.read()

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE, *, if_match: str | None = None
                    ) -> Iterator[bytes]:
        """Stream the object in chunks of at most ``chunk_size`` bytes (one GET, so one version)."""
        r = self._get(key, if_match=if_match)
        with r["Body"] as body:
            try:
                while chunk := body.read(chunk_size):
                    yield chunk
            except BotoCoreError as err:
                raise self._error("get", key, err) from err

    def sha256_of(self, key: str) -> tuple[str, int]:
        """Hex SHA-256 and size of the object, streamed (constant memory); raises :class:`ObjectNotFound`."""
        digest = hashlib.sha256()
        size = 0
        for chunk in self.iter_chunks(key):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted (follows pagination)."""
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
                keys.extend(item["Key"][len(self.key_prefix):] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as err:
            raise self._error("list", prefix, err) from err
        return sorted(keys)

    # ----------------------------------------------------------------- writes

    def _put(self, op: str, key: str, body: bytes, conflict: type[PreconditionFailed], *,
             content_type: str, **conditions: str) -> str:
        try:
            r = self.client.put_object(
                Bucket=self.bucket, Key=self._k(key), Body=body, ContentType=content_type,
                ChecksumSHA256=sha256_b64(body), **conditions,
            )
        except (ClientError, BotoCoreError) as err:
            raise self._error(op, key, err, conflict) from err
        return _quoted(r["ETag"])

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """Create ``key`` only if it does not exist (``IfNoneMatch='*'``); returns the ETag.

        Raises :class:`ObjectExists` when the key is taken (the existing object is untouched).
        Note: if a network retry repeats a write whose first attempt landed, the retry also
        reports :class:`ObjectExists`; callers that need idempotence compare the content.
        """
        return self._put("put-if-absent", key, body, ObjectExists, content_type=content_type, IfNoneMatch="*")

    def put_if_match(self, key: str, body: bytes, expected_etag: str | None,
                     content_type: str = "application/json") -> str:
        """Compare-and-swap: replace ``key`` only if its ETag is still ``expected_etag``.

        ``expected_etag=None`` means "only if absent". Returns the new ETag; raises
        :class:`PreconditionFailed` when another writer got there first.
        """
        if expected_etag is None:
            return self._put("put-if-match", key, body, PreconditionFailed, content_type=content_type,
                             IfNoneMatch="*")
        try:
            return self._put("put-if-match", key, body, PreconditionFailed, content_type=content_type,
                             IfMatch=_quoted(expected_etag))
        except ObjectNotFound as err:  # AWS answers If-Match on a missing key with 404: still a lost race
            raise PreconditionFailed(str(err), key=key, bucket=self.bucket, code=err.code,
                                     status=err.status) from err

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error when absent). Not used on production/ or evidence/."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as err:
            raise self._error("delete", key, err) from err

    # ----------------------------------------------------------------- verified copy

    def copy_verified(self, src_key: str, dst_key: str, expected_sha256: str, *,
                      part_size: int = PART_SIZE) -> str:
        """Copy ``src_key`` to a new ``dst_key`` whose content must hash to ``expected_sha256``.

        The bytes go through this process (one GET pinned to the source's ETag) and are
        hashed on the way, so what lands is exactly what was checked: a source whose digest
        differs raises :class:`ChecksumMismatch` before anything becomes visible (a
        multipart upload is aborted). Each write carries ``ChecksumSHA256`` for the server
        to validate. The final write is create-only, so an existing destination is never
        overwritten (:class:`ObjectExists`). Afterwards the destination is re-read and
        hashed; a mismatch raises :class:`ChecksumMismatch` and deletes nothing.
        Returns the destination's ETag.
        """
        expected = expected_sha256.lower().removeprefix("sha256:")
        if self.head(dst_key) is not None:  # cheap early answer; the conditional write below is the guarantee
            raise ObjectExists(f"copy to {self.url(dst_key)}: destination exists; never overwritten",
                               key=dst_key, bucket=self.bucket, status=412)
        src = self.head(src_key)
        if src is None:
            raise ObjectNotFound(f"copy from {self.url(src_key)}: NoSuchKey", key=src_key, bucket=self.bucket,
                                 status=404)
        content_type = src.content_type or "application/octet-stream"
        if src.size <= part_size:
            body = b"".join(self.iter_chunks(src_key, if_match=src.etag))
            self._check_digest(src_key, hashlib.sha256(body).hexdigest(), expected, "source")
            etag = self._put("copy", dst_key, body, ObjectExists, content_type=content_type, IfNoneMatch="*")
        else:
            part_size = max(part_size, -(-src.size // 10_000))  # S3 allows at most 10,000 parts
            etag = self._multipart_copy(src_key, src.etag, dst_key, expected, content_type, part_size)
        written, _ = self.sha256_of(dst_key)
        self._check_digest(dst_key, written, expected, "destination after copy")
        return etag

    def _check_digest(self, key: str, actual: str, expected: str, what: str) -> None:
        if actual != expected:
            raise ChecksumMismatch(
                f"{what} {self.url(key)} has sha256 {actual[:16]}…, expected {expected[:16]}…",
                key=key, bucket=self.bucket,
            )

    def _multipart_copy(self, src_key: str, src_etag: str, dst_key: str, expected: str,
                        content_type: str, part_size: int) -> str:
        """Stream the source into a multipart upload; complete it only if the digest matches."""
        dst = self._k(dst_key)
        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=dst, ContentType=content_type, ChecksumAlgorithm="SHA256",
            )["UploadId"]
        except (ClientError, BotoCoreError) as err:
            raise self._error("copy", dst_key, err) from err
        completed = False
        try:
            digest = hashlib.sha256()
            parts: list[dict[str, Any]] = []
            for number, part in enumerate(_rechunk(self.iter_chunks(src_key, if_match=src_etag), part_size), 1):
                digest.update(part)
                checksum = sha256_b64(part)
                try:
                    r = self.client.upload_part(Bucket=self.bucket, Key=dst, UploadId=upload_id,
                                                PartNumber=number, Body=part, ChecksumSHA256=checksum)
                except (ClientError, BotoCoreError) as err:
                    raise self._error("copy", dst_key, err) from err
                parts.append({"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": checksum})
            self._check_digest(src_key, digest.hexdigest(), expected, "source")
            try:
                r = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",  # honoured by SeaweedFS 4.48: an object appearing meanwhile wins
                )
            except (ClientError, BotoCoreError) as err:
                raise self._error("copy", dst_key, err, ObjectExists) from err
            completed = True
            return _quoted(r["ETag"])
        finally:
            if not completed:  # leave no orphan parts behind; abort failures are not the caller's problem
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
                except (ClientError, BotoCoreError):
                    pass


def _rechunk(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Regroup a byte stream into pieces of exactly ``size`` bytes (the last may be shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)

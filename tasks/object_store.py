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

Outages: botocore makes one attempt per call; every operation here retries transient failures
(connection refused, closed or timed out, 500/502/503/504, ``SlowDown``) with exponential backoff
and jitter for up to ``retry_seconds`` (``CLEARANCE_S3_RETRY_SECONDS``, default 30: a SeaweedFS
restart takes about 3 s), then raises :class:`StoreUnavailable` naming the endpoint. Retries are
idempotent: reads are repeated (a broken stream resumes at its offset, pinned to the same ETag);
a write whose earlier attempt may have landed is read back before it is repeated or reported, so
a create-only write whose answer was lost is success (same bytes stored), not :class:`ObjectExists`,
and a compare-and-swap whose answer was lost is success when the object now holds what we wrote.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.loaders import Loader

from tasks.store import (
    AccessDenied,
    ChecksumMismatch,
    MultipartUpload,
    NotSupported,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    PreconditionFailed,
    StoreUnavailable,
    read_json_state,
    update_json_state,
)

__all__ = [
    "AccessDenied", "ChecksumMismatch", "MultipartUpload", "NotSupported", "ObjectExists", "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore", "ObjectStoreError", "PreconditionFailed", "StoreUnavailable", "read_json_state",
    "update_json_state",
]

if TYPE_CHECKING:
    from clearance.settings import Settings

#: Objects up to this size are copied with one PutObject; bigger ones as a multipart upload
#: of parts this size, so a large artifact is never held in memory whole.
PART_SIZE = 8 * 1024 * 1024
#: Read size of streaming reads (sha256_of, iter_chunks).
CHUNK_SIZE = 1024 * 1024

#: Answers worth another attempt: the server is restarting, overloaded or briefly unreachable.
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
TRANSIENT_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                             "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"})
#: Backoff between attempts: the first pause, doubled per attempt up to the cap, each with jitter.
BACKOFF_FIRST = 0.2
BACKOFF_CAP = 2.0

log = logging.getLogger("clearance.store")
T = TypeVar("T")


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


# --------------------------------------------------------------------------- transient failures


def is_transient(err: BaseException) -> bool:
    """Whether another attempt may succeed: no connection, a dropped or timed-out one, 5xx, SlowDown."""
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status in TRANSIENT_STATUS or str(err.response.get("Error", {}).get("Code", "")) in TRANSIENT_CODES
    return isinstance(err, BotoConnectionError | HTTPClientError | IncompleteReadError)


def _describe(err: ClientError | BotoCoreError) -> str:
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "error")
        return f"{code} (HTTP {err.response.get('ResponseMetadata', {}).get('HTTPStatusCode', '?')})"
    return f"{type(err).__name__}: {err}"


@dataclass
class _Window:
    """The retry budget of one operation: attempts until ``seconds`` have passed since it began."""

    seconds: float
    began: float = field(default_factory=time.monotonic)
    attempts: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def pause(self) -> float | None:
        """Count a failed attempt; seconds to wait before the next one, or ``None`` when the window is spent."""
        self.attempts += 1
        left = self.seconds - self.elapsed()
        if left <= 0:
            return None
        ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (self.attempts - 1))
        return min(left, ceiling / 2 + random.uniform(0, ceiling / 2))  # "equal jitter"


# --------------------------------------------------------------------------- the store


#: botocore's data loader (service models, endpoints), shared by every session of this process: each fresh
#: session would otherwise read and parse the same JSON files again (~0.1 CPU-s per client, a few per run).
_SHARED_LOADER: Loader | None = None


def _session() -> boto3.session.Session:
    """A new session (sessions are not thread-safe; clients are), reading botocore's data through one loader."""
    global _SHARED_LOADER
    if _SHARED_LOADER is None:
        _SHARED_LOADER = Loader()
    core = botocore.session.Session()
    core.register_component("data_loader", _SHARED_LOADER)
    return boto3.session.Session(botocore_session=core)


def preload_client_data() -> None:
    """Read botocore's S3 data now (no request is sent): a process forked after this creates clients cheaply."""
    _session().client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                      aws_access_key_id="preload", aws_secret_access_key="preload")


class ObjectStore:
    """A boto3 S3 client bound to one bucket, optionally under a key prefix.

    ``key_prefix`` is prepended to every key and stripped from listed keys, so tests can
    give each case its own namespace in one shared bucket while callers keep using the
    product's own keys (``candidates/…``, ``production/…``).
    """

    def __init__(self, client: Any, bucket: str, key_prefix: str = "", *, retry_seconds: float = 0.0) -> None:
        self.client = client
        self.bucket = bucket
        self.key_prefix = key_prefix
        #: How long one operation keeps retrying transient failures (0: one attempt).
        #: :meth:`from_settings` takes it from ``CLEARANCE_S3_RETRY_SECONDS``.
        self.retry_seconds = retry_seconds
        meta = getattr(client, "meta", None)
        #: Where the store is, for messages (never credentials).
        self.endpoint: str = str(getattr(meta, "endpoint_url", None) or "the default S3 endpoint")

    def __repr__(self) -> str:  # the client holds credentials: never show more than this
        return f"ObjectStore(bucket={self.bucket!r}, key_prefix={self.key_prefix!r})"

    @classmethod
    def from_settings(cls, settings: Settings, *, key_prefix: str = "") -> ObjectStore:
        """Build the store from :class:`clearance.settings.Settings` (endpoint, region, keys, bucket)."""
        config = Config(
            s3={"addressing_style": "path"},  # SeaweedFS/MinIO on 127.0.0.1 have no per-bucket DNS names
            # One attempt per call: ObjectStore retries (over a window in seconds, reading a write back
            # before repeating it, which botocore cannot do).
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        secret = settings.s3_secret_access_key
        key_id = settings.s3_access_key_id
        client = _session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=key_id.get_secret_value() if key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        return cls(client, settings.bucket, key_prefix=key_prefix, retry_seconds=settings.s3_retry_seconds)

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

    # ----------------------------------------------------------------- retries

    def _window(self) -> _Window:
        return _Window(self.retry_seconds)

    def _wait(self, op: str, key: str, err: ClientError | BotoCoreError, window: _Window) -> None:
        """After a transient failure: sleep before the next attempt, or raise :class:`StoreUnavailable`."""
        delay = window.pause()
        if delay is None:
            status = code = None
            if isinstance(err, ClientError):
                status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                code = str(err.response.get("Error", {}).get("Code", ""))
            raise StoreUnavailable(
                f"{op} {self.url(key)}: the object store at {self.endpoint} is unavailable: {_describe(err)}; "
                f"gave up after {window.attempts} attempt{'s' if window.attempts != 1 else ''} in "
                f"{window.elapsed():.1f} s (retry window {self.retry_seconds:g} s, CLEARANCE_S3_RETRY_SECONDS)",
                key=key or None, bucket=self.bucket, code=code, status=status) from err
        # One warning per operation (a CLI prints it on stderr), the attempts after it at debug level.
        log.log(logging.WARNING if window.attempts == 1 else logging.DEBUG,
                "%s %s: %s; the object store at %s may be restarting: retrying for up to %g s (attempt %d, "
                "next in %.2f s)", op, self.url(key), _describe(err), self.endpoint, self.retry_seconds,
                window.attempts, delay)
        time.sleep(delay)

    def _recovered(self, op: str, key: str, window: _Window) -> None:
        if window.attempts:
            log.info("%s %s: the object store answered again after %.1f s (%d failed attempts)", op, self.url(key),
                     window.elapsed(), window.attempts)

    def _call(self, op: str, key: str, attempt: Callable[[], T], *,
              conflict: type[PreconditionFailed] = PreconditionFailed, window: _Window | None = None) -> T:
        """``attempt()`` until it succeeds, fails for good (translated), or the window is spent.

        Only for operations that are safe to repeat (reads, deletes, part uploads); writes use :meth:`_put`.
        """
        window = window or self._window()
        while True:
            try:
                answer = attempt()
                self._recovered(op, key, window)
                return answer
            except (ClientError, BotoCoreError) as err:
                if not is_transient(err):
                    raise self._error(op, key, err, conflict) from err
                self._wait(op, key, err, window)

    # ----------------------------------------------------------------- the server's clock

    def server_time(self) -> datetime:
        """The S3 server's clock: the ``Date`` header of a HeadBucket sent now (1-second resolution).

        Nothing is cached, so the answer is never older than this round trip. When the request fails
        or the answer has no usable ``Date``, :class:`ObjectStoreError` says so: the local clock, which
        whoever runs this process controls, is never used instead.
        """
        op = "server time from"
        try:
            response = self._call(op, "", lambda: self.client.head_bucket(Bucket=self.bucket))
        except ObjectStoreError as err:
            raise type(err)(f"{err} — cannot read the object store's clock, and the local clock "
                            "is not used in its place", key=None, bucket=self.bucket,
                            code=err.code, status=err.status) from err
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
            r = self._call("head", key, lambda: self.client.head_object(
                Bucket=self.bucket, Key=self._k(key), ChecksumMode="ENABLED"))
        except ObjectNotFound as err:
            if err.code != "NoSuchBucket":
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(r.get("ContentLength", 0)),
            etag=_quoted(r["ETag"]),
            last_modified=r.get("LastModified"),
            content_type=r.get("ContentType"),
            checksum_sha256=_b64_to_hex(r.get("ChecksumSHA256")),
        )

    def _get_kwargs(self, key: str, *, if_match: str | None = None, range_: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if if_match:
            kwargs["IfMatch"] = if_match
        if range_:
            kwargs["Range"] = range_
        return kwargs

    def _read_whole(self, key: str, window: _Window | None = None, *, range_: str | None = None
                    ) -> tuple[bytes, str]:
        """One GET and its whole body, repeated (GET and read together) on transient failures."""
        def attempt() -> tuple[bytes, str]:
            r = self.client.get_object(**self._get_kwargs(key, range_=range_))
            with r["Body"] as body:
                return body.read(), _quoted(r["ETag"])
        return self._call("get", key, attempt, window=window)

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        """The whole object and its ETag (for a later :meth:`put_if_match`); raises :class:`ObjectNotFound`."""
        return self._read_whole(key)

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
        return self._read_whole(key, range_=f"bytes={start}-{start + length - 1}")[0]

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE, *, if_match: str | None = None
                    ) -> Iterator[bytes]:
        """Stream the object in chunks of at most ``chunk_size`` bytes (one version).

        A stream broken by a transient failure resumes at its offset with a ranged GET pinned to the
        first answer's ETag, so the bytes are always of one version (changed meanwhile: PreconditionFailed).
        """
        offset = 0
        pinned = if_match
        resumes: _Window | None = None  # the budget for resuming broken streams, from the first break
        while True:
            get = self._get_kwargs(key, if_match=pinned, range_=f"bytes={offset}-" if offset else None)
            try:
                r = self._call("get", key, partial(self.client.get_object, **get))
            except ObjectStoreError as err:
                if offset and err.status == 416:  # broke right after the last byte: nothing is missing
                    return
                raise
            pinned = pinned or _quoted(r["ETag"])
            try:
                with r["Body"] as body:
                    while chunk := body.read(chunk_size):
                        offset += len(chunk)
                        yield chunk
                return
            except BotoCoreError as err:
                if not is_transient(err):
                    raise self._error("get", key, err) from err
                resumes = resumes or self._window()
                self._wait("get", key, err, resumes)

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
        def attempt() -> list[str]:  # a broken listing starts over
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
                keys.extend(item["Key"][len(self.key_prefix):] for item in page.get("Contents", []))
            return keys
        return sorted(self._call("list", prefix, attempt))

    # ----------------------------------------------------------------- writes

    def _put(self, op: str, key: str, body: bytes, conflict: type[PreconditionFailed], *,
             content_type: str, **conditions: str) -> str:
        """A conditional PutObject, retried on transient failures without ever misreporting a landed write.

        After a failure the write may have landed anyway (only its answer was lost), so before the next
        attempt, and before a refusal is reported, the object is read back: holding exactly ``body``,
        the write is done and its ETag is returned. The condition keeps every repeat safe.
        """
        window = self._window()
        uncertain = False  # an earlier attempt may have landed without our hearing of it
        while True:
            if uncertain and (landed := self._holds(key, body, window)) is not None:
                return landed
            try:
                r = self.client.put_object(
                    Bucket=self.bucket, Key=self._k(key), Body=body, ContentType=content_type,
                    ChecksumSHA256=sha256_b64(body), **conditions,
                )
                self._recovered(op, key, window)
                return _quoted(r["ETag"])
            except (ClientError, BotoCoreError) as err:
                if is_transient(err):
                    uncertain = True
                    self._wait(op, key, err, window)
                    continue
                translated = self._error(op, key, err, conflict)
                if uncertain and isinstance(translated, PreconditionFailed | ObjectNotFound) \
                        and (landed := self._holds(key, body, window)) is not None:
                    return landed  # what the condition refuses now is our own earlier attempt
                raise translated from err

    def _holds(self, key: str, body: bytes, window: _Window) -> str | None:
        """The ETag of ``key`` when it holds exactly ``body`` (the read-back of an uncertain write), else ``None``."""
        try:
            current, etag = self._read_whole(key, window)
        except ObjectNotFound:
            return None
        if current != body:
            return None
        log.info("%s: an earlier attempt of this write landed (its answer was lost); not repeated", self.url(key))
        return etag

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """Create ``key`` only if it does not exist (``IfNoneMatch='*'``); returns the ETag.

        Raises :class:`ObjectExists` when the key is taken (the existing object is untouched). A write
        repeated after an outage whose earlier attempt landed is success (the object holds these bytes),
        not :class:`ObjectExists`; a second, separate call with the same bytes still raises.
        """
        return self._put("put-if-absent", key, body, ObjectExists, content_type=content_type, IfNoneMatch="*")

    def put_if_match(self, key: str, body: bytes, expected_etag: str | None,
                     content_type: str = "application/json") -> str:
        """Compare-and-swap: replace ``key`` only if its ETag is still ``expected_etag``.

        ``expected_etag=None`` means "only if absent". Returns the new ETag; raises
        :class:`PreconditionFailed` when another writer got there first. After an outage, a swap whose
        answer was lost is success when the object holds exactly ``body``.
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
        """Delete ``key`` (no error when absent). Not used on production/ or evidence/ (except the store
        probe's own objects, ``tasks/store_probe.py``)."""
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=self._k(key)))

    # ----------------------------------------------------------------- multipart uploads left behind

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        """Unfinished multipart uploads whose key starts with ``prefix``, oldest first (follows pagination).

        A copy aborts its own upload when it fails; one killed mid-copy (SIGKILL, OOM, a lost machine)
        cannot, and its parts stay until someone aborts the upload. Raises :class:`NotSupported` when
        the server does not list uploads (then nothing is known about them).
        """
        uploads: list[MultipartUpload] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
                for item in page.get("Uploads", []):
                    initiated = item.get("Initiated")
                    uploads.append(MultipartUpload(
                        key=item["Key"][len(self.key_prefix):], upload_id=item["UploadId"],
                        initiated=initiated.astimezone(UTC) if isinstance(initiated, datetime) else None))
        except (ClientError, BotoCoreError) as err:
            raise self._error("list multipart uploads", prefix, err) from err
        return sorted(uploads, key=lambda u: (u.initiated or datetime.min.replace(tzinfo=UTC), u.key))

    def abort_multipart_uploads(self, prefix: str, *, initiated_before: datetime | None = None
                                ) -> list[MultipartUpload]:
        """Abort the unfinished multipart uploads under ``prefix`` — only those begun before
        ``initiated_before`` when given (an upload whose start is unknown is then left alone).

        Returns the uploads that are gone now; one already gone (``NoSuchUpload``) counts as gone.
        Any other refusal raises, naming the key: an upload that could not be aborted is never
        reported as cleaned up.
        """
        gone: list[MultipartUpload] = []
        for upload in self.list_multipart_uploads(prefix):
            if initiated_before is not None and (upload.initiated is None or upload.initiated >= initiated_before):
                continue
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._k(upload.key),
                                                   UploadId=upload.upload_id)
            except (ClientError, BotoCoreError) as err:
                translated = self._error("abort multipart upload of", upload.key, err)
                if not (isinstance(translated, ObjectNotFound) or translated.code == "NoSuchUpload"):
                    raise translated from err
            gone.append(upload)
        return gone

    def ensure_upload_cleanup_rule(self, days: int = 1) -> bool:
        """Make sure the bucket has a lifecycle rule that aborts multipart uploads still unfinished
        ``days`` after they began (``AbortIncompleteMultipartUpload``); ``True`` if this call added it.

        Other lifecycle rules of the bucket are kept. The configuration is read back after it is
        written, so a server that answers 200 but keeps nothing does not pass. Raises
        :class:`NotSupported` when the server does not implement bucket lifecycles: then nothing
        but the crash sweep (``tasks/crashes.py``) aborts what killed copies leave. A stored rule
        only says the server accepted it: whether and when it acts on it is the server's business
        (SeaweedFS runs lifecycle actions only where its lifecycle worker runs).
        """
        rules = self._lifecycle_rules()
        if any(_aborts_uploads(rule, days) for rule in rules):
            return False
        rule = {"ID": UPLOAD_CLEANUP_RULE, "Status": "Enabled", "Filter": {"Prefix": ""},  # the whole bucket
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}
        kept = [r for r in rules if r.get("ID") != UPLOAD_CLEANUP_RULE]
        try:
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                           LifecycleConfiguration={"Rules": [*kept, rule]})
        except (ClientError, BotoCoreError) as err:
            raise self._error("put lifecycle configuration of", "", err) from err
        if not any(_aborts_uploads(stored, days) for stored in self._lifecycle_rules()):
            raise NotSupported(f"put lifecycle configuration of {self.url('')}: accepted, but the rule aborting "
                               "incomplete multipart uploads is not there when read back", bucket=self.bucket)
        return True

    def _lifecycle_rules(self) -> list[dict[str, Any]]:
        try:
            answer = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            if isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") == \
                    "NoSuchLifecycleConfiguration":
                return []
            raise self._error("get lifecycle configuration of", "", err) from err
        return list(answer.get("Rules", []))

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
        # Repeated after a lost answer, this leaves an empty upload behind (the crash sweep and the
        # bucket's lifecycle rule abort those); it never makes an object.
        upload_id = self._call("copy", dst_key, lambda: self.client.create_multipart_upload(
            Bucket=self.bucket, Key=dst, ContentType=content_type, ChecksumAlgorithm="SHA256",
        )["UploadId"])
        completed = False
        try:
            digest = hashlib.sha256()
            parts: list[dict[str, Any]] = []
            for number, part in enumerate(_rechunk(self.iter_chunks(src_key, if_match=src_etag), part_size), 1):
                digest.update(part)
                checksum = sha256_b64(part)
                r = self._call("copy", dst_key, partial(  # a part uploaded twice is simply replaced
                    self.client.upload_part, Bucket=self.bucket, Key=dst, UploadId=upload_id, PartNumber=number,
                    Body=part, ChecksumSHA256=checksum))
                parts.append({"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": checksum})
            self._check_digest(src_key, digest.hexdigest(), expected, "source")
            etag = self._complete(dst_key, upload_id, parts, expected)
            completed = True
            return etag
        finally:
            if not completed:  # leave no orphan parts behind; abort failures are not the caller's problem
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
                except (ClientError, BotoCoreError):
                    pass

    def _complete(self, dst_key: str, upload_id: str, parts: list[dict[str, Any]], expected: str) -> str:
        """CompleteMultipartUpload (create-only), retried; after a lost answer, a destination that now
        has the expected digest is this upload's object (the repeat is refused: 412, or 404 NoSuchUpload)."""
        window = self._window()
        uncertain = False
        while True:
            try:
                r = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self._k(dst_key), UploadId=upload_id, MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",  # honoured by SeaweedFS 4.48: an object appearing meanwhile wins
                )
                self._recovered("copy", dst_key, window)
                return _quoted(r["ETag"])
            except (ClientError, BotoCoreError) as err:
                if is_transient(err):
                    uncertain = True
                    self._wait("copy", dst_key, err, window)
                    continue
                translated = self._error("copy", dst_key, err, ObjectExists)
                if uncertain and isinstance(translated, PreconditionFailed | ObjectNotFound):
                    info = self.head(dst_key)
                    if info is not None and self.sha256_of(dst_key)[0] == expected:
                        return info.etag
                raise translated from err


#: ID of the bucket lifecycle rule :meth:`ObjectStore.ensure_upload_cleanup_rule` adds.
UPLOAD_CLEANUP_RULE = "clearance-abort-incomplete-multipart-uploads"


def _aborts_uploads(rule: dict[str, Any], days: int) -> bool:
    """Whether a lifecycle rule aborts every bucket's incomplete multipart uploads within ``days``."""
    action = rule.get("AbortIncompleteMultipartUpload") or {}
    scope = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
    return (rule.get("Status") == "Enabled" and 0 < int(action.get("DaysAfterInitiation", 0)) <= days
            and isinstance(scope, str) and scope == "")


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

"""Read the storage posture of the buckets a promotion uses (the security_scan gate judges it).

:func:`read_posture` asks one bucket, with the store's own retries (:class:`tasks.object_store.ObjectStore`:
transient failures are retried for ``retry_seconds``, then the store is *unavailable*):

=======================  ======================================================================================
aspect                   calls and what they mean
=======================  ======================================================================================
``encryption``           GetBucketEncryption: a rule with an ``SSEAlgorithm`` → on;
                         ``ServerSideEncryptionConfigurationNotFoundError`` → off
``versioning``           GetBucketVersioning: ``Enabled`` → on; ``Suspended`` or no status → off
``public_access_block``  GetPublicAccessBlock: all four flags true → on (else off, naming the false ones);
                         ``NoSuchPublicAccessBlockConfiguration`` → off
``policy``               GetBucketPolicy (``NoSuchBucketPolicy``: none) and GetBucketAcl: an anonymous read in
                         either → off; neither → on; one unreadable and the other clean → unknown
=======================  ======================================================================================

Every other answer leaves the aspect ``unknown`` with its reason: not implemented (501 ``NotImplemented``,
405 ``MethodNotAllowed``, ``XNotImplemented``, …), access denied (403), no such bucket, unavailable (after
the retry window; the aspects not yet asked are then not asked), or an unexpected code or answer.
HeadBucket goes first: SeaweedFS answers GetBucketEncryption on a bucket that does not exist with
``ServerSideEncryptionConfigurationNotFoundError`` (that would read as "off" for a bucket that is not there).

What servers answer (checked by ``tests/integration/test_storage_posture.py``):

- SeaweedFS 4.48 (``weed mini``) implements GetBucketEncryption (and applies the default: objects come back
  with ``ServerSideEncryption``), GetBucketVersioning, GetBucketPolicy (and enforces a ``"*"`` GetObject
  grant: an unsigned GET then succeeds), GetBucketAcl (``public-read`` also opens unsigned GETs); it answers
  GetPublicAccessBlock (and PutPublicAccessBlock) with 501 ``NotImplemented``: unknown, never pass.
- moto's server implements all five, PublicAccessBlock included (``NoSuchPublicAccessBlockConfiguration``
  when none is set); it answers HeadBucket on a missing bucket with a bare 404.

:func:`read_promotion_postures` / :func:`read_storage_postures` (the Prefect task) read the clearance bucket
(``CLEARANCE_BUCKET``) and, when configured, the witness bucket (``CLEARANCE_WITNESS_BUCKET``, with the
witness endpoint and credentials).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clearance.settings import Settings, get_settings
from gates.security_scan.posture import (
    AspectReading,
    BucketPosture,
    UnknownReason,
    anonymous_read_statements,
    public_acl_grants,
)
from tasks.caching import per_run_key
from tasks.object_store import ObjectStore
from tasks.prefect_tasks import task
from tasks.store import (
    AccessDenied,
    NotSupported,
    ObjectNotFound,
    ObjectStoreError,
    StoreUnavailable,
)
from tasks.wiring import object_store

__all__ = ["read_posture", "read_promotion_postures", "read_storage_postures"]

#: Error codes servers use for a call they do not implement (on top of HTTP 501 and 405).
NOT_IMPLEMENTED_CODES = frozenset({"NotImplemented", "XNotImplemented", "MethodNotAllowed", "NotSupported",
                                   "UnsupportedOperation", "Unsupported"})
#: The "nothing configured" answers: the aspect is off (or, for the policy, there is none).
NO_ENCRYPTION = "ServerSideEncryptionConfigurationNotFoundError"
NO_PUBLIC_ACCESS_BLOCK = "NoSuchPublicAccessBlockConfiguration"
NO_POLICY = "NoSuchBucketPolicy"
PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


class _Unreadable(Exception):
    """An aspect's call failed in a way that leaves it unknown."""

    def __init__(self, reason: UnknownReason, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


def _error_text(err: ObjectStoreError) -> str:
    if err.code or err.status:
        return f"{err.code or 'error'} (HTTP {err.status if err.status is not None else '?'})"
    return str(err).splitlines()[0][:200]


def _classify(err: ObjectStoreError) -> _Unreadable:
    """The reason an aspect stays unknown, from the store's translated error."""
    code = err.code or ""
    if isinstance(err, StoreUnavailable):
        return _Unreadable(UnknownReason.UNAVAILABLE, str(err).splitlines()[0][:300])
    if isinstance(err, NotSupported) or code in NOT_IMPLEMENTED_CODES or err.status in (405, 501):
        return _Unreadable(UnknownReason.NOT_IMPLEMENTED, _error_text(err))
    if isinstance(err, AccessDenied):
        return _Unreadable(UnknownReason.ACCESS_DENIED, _error_text(err))
    if code == "NoSuchBucket" or (isinstance(err, ObjectNotFound) and code in {"", "404", "NotFound"}):
        return _Unreadable(UnknownReason.NO_SUCH_BUCKET, _error_text(err))
    return _Unreadable(UnknownReason.UNEXPECTED, _error_text(err))


class _Reader:
    """One bucket's calls, through the store's retries; after an outage the remaining calls are not made."""

    def __init__(self, client: Any, bucket: str, retry_seconds: float) -> None:
        self.store = ObjectStore(client, bucket, retry_seconds=retry_seconds)
        self.bucket = bucket
        self.down: _Unreadable | None = None

    def call(self, op: str, attempt: Callable[[], dict[str, Any]], absent: str | None = None) -> dict[str, Any] | None:
        """The answer of ``attempt``; ``None`` when the server says ``absent`` (nothing configured)."""
        if self.down is not None:
            raise _Unreadable(UnknownReason.UNAVAILABLE, f"{op} not asked: {self.down.error}")
        try:
            return self.store._call(op, "", attempt)
        except ObjectStoreError as err:
            if absent is not None and err.code == absent:
                return None
            unreadable = _classify(err)
            if unreadable.reason is UnknownReason.UNAVAILABLE:
                self.down = unreadable
            raise unreadable from err


def _unknown(err: _Unreadable, *calls: str, detail: str = "") -> AspectReading:
    return AspectReading(state="unknown", reason=err.reason, error=err.error, calls=calls, detail=detail)


def _encryption(reader: _Reader) -> AspectReading:
    call = "GetBucketEncryption"
    try:
        answer = reader.call(call, lambda: reader.store.client.get_bucket_encryption(Bucket=reader.bucket),
                             absent=NO_ENCRYPTION)
    except _Unreadable as err:
        return _unknown(err, call)
    if answer is None:
        return AspectReading(state="off", detail="no default encryption configured", calls=(call,))
    rules = (answer.get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    algorithms = []
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        if default.get("SSEAlgorithm"):
            key = default.get("KMSMasterKeyID")
            algorithms.append(f"{default['SSEAlgorithm']}{f' (key {key})' if key else ''}")
    if not algorithms:
        return AspectReading(state="off", detail="an encryption configuration without a default algorithm",
                             calls=(call,))
    return AspectReading(state="on", detail=", ".join(algorithms), calls=(call,))


def _versioning(reader: _Reader) -> AspectReading:
    call = "GetBucketVersioning"
    try:
        answer = reader.call(call, lambda: reader.store.client.get_bucket_versioning(Bucket=reader.bucket)) or {}
    except _Unreadable as err:
        return _unknown(err, call)
    status = answer.get("Status")
    mfa = f", MFA delete {answer['MFADelete']}" if answer.get("MFADelete") else ""
    if status == "Enabled":
        return AspectReading(state="on", detail=f"Enabled{mfa}", calls=(call,))
    if status == "Suspended":
        return AspectReading(state="off", detail=f"Suspended{mfa}", calls=(call,))
    if status:
        return AspectReading(state="unknown", reason=UnknownReason.UNEXPECTED, error=f"status {status!r}",
                             calls=(call,))
    return AspectReading(state="off", detail="never enabled", calls=(call,))


def _public_access_block(reader: _Reader) -> AspectReading:
    call = "GetPublicAccessBlock"
    try:
        answer = reader.call(call, lambda: reader.store.client.get_public_access_block(Bucket=reader.bucket),
                             absent=NO_PUBLIC_ACCESS_BLOCK)
    except _Unreadable as err:
        return _unknown(err, call)
    if answer is None:
        return AspectReading(state="off", detail="no public access block configured", calls=(call,))
    flags = answer.get("PublicAccessBlockConfiguration") or {}
    false = [name for name in PUBLIC_ACCESS_FLAGS if flags.get(name) is not True]
    if false:
        return AspectReading(state="off", detail=f"false: {', '.join(false)}", calls=(call,))
    return AspectReading(state="on", detail="all four flags true", calls=(call,))


def _anonymous_read(reader: _Reader) -> AspectReading:
    """The ``policy`` aspect: off when the bucket policy or the ACL lets everyone read."""
    calls = ("GetBucketPolicy", "GetBucketAcl")
    public: list[str] = []
    unreadable: list[tuple[str, _Unreadable]] = []
    try:
        answer = reader.call(calls[0], lambda: reader.store.client.get_bucket_policy(Bucket=reader.bucket),
                             absent=NO_POLICY)
        if answer is not None:
            try:
                public += [f"policy: {s}" for s in anonymous_read_statements(str(answer.get("Policy", "")),
                                                                              reader.bucket)]
            except ValueError as err:  # json.JSONDecodeError is a ValueError
                raise _Unreadable(UnknownReason.UNEXPECTED, f"the bucket policy cannot be read: {err}") from err
    except _Unreadable as err:
        unreadable.append((calls[0], err))
    try:
        acl = reader.call(calls[1], lambda: reader.store.client.get_bucket_acl(Bucket=reader.bucket)) or {}
        public += [f"ACL grants {grant}" for grant in public_acl_grants(acl.get("Grants") or [])]
    except _Unreadable as err:
        unreadable.append((calls[1], err))
    if public:  # an anonymous read seen is off, whatever else could not be read
        return AspectReading(state="off", detail="anonymous read: " + "; ".join(public), calls=calls)
    if unreadable:
        first = unreadable[0][1]
        error = "; ".join(f"{call}: {err.error}" for call, err in unreadable)
        clean = [call for call in calls if call not in {c for c, _ in unreadable}]
        detail = f"{', '.join(clean)} grants no anonymous read" if clean else ""
        return AspectReading(state="unknown", reason=first.reason, error=error, calls=calls, detail=detail)
    return AspectReading(state="on", detail="neither the bucket policy nor the ACL grants anonymous read",
                         calls=calls)


def _all_unknown(bucket: str, role: str, endpoint: str | None, err: _Unreadable, call: str) -> BucketPosture:
    reading = _unknown(err, call)
    return BucketPosture(bucket=bucket, role=role, endpoint=endpoint, encryption=reading, versioning=reading,
                         public_access_block=reading, policy=reading)


def read_posture(client: Any, bucket: str, *, retry_seconds: float = 0.0, role: str = "clearance") -> BucketPosture:
    """The storage posture of ``bucket`` through a boto3 S3 ``client``; never raises for what the server says.

    ``retry_seconds`` is the store's retry window per call (:class:`tasks.object_store.ObjectStore`;
    ``CLEARANCE_S3_RETRY_SECONDS`` for the stores :mod:`tasks.wiring` builds). ``role`` names what the
    promotion uses the bucket for (``clearance``, ``witness``), for the gate's messages.
    """
    reader = _Reader(client, bucket, retry_seconds)
    endpoint = reader.store.endpoint
    try:
        reader.call("HeadBucket", lambda: client.head_bucket(Bucket=bucket))
    except _Unreadable as err:
        # No bucket, or no store: every aspect is unknown for the same reason. Denied HeadBucket (it needs
        # s3:ListBucket) is not the end: the configuration calls may be allowed, each answers for itself.
        if err.reason in (UnknownReason.NO_SUCH_BUCKET, UnknownReason.UNAVAILABLE):
            return _all_unknown(bucket, role, endpoint, err, "HeadBucket")
    return BucketPosture(bucket=bucket, role=role, endpoint=endpoint, encryption=_encryption(reader),
                         versioning=_versioning(reader), public_access_block=_public_access_block(reader),
                         policy=_anonymous_read(reader))


def read_promotion_postures(settings: Settings | None = None) -> list[BucketPosture]:
    """The posture of every bucket a promotion uses: the clearance bucket and, if configured, the witness
    bucket (read with the witness endpoint and credentials)."""
    from tasks.witness import witness_store

    settings = settings or get_settings()
    store = object_store(settings)
    postures = [read_posture(store.client, store.bucket, retry_seconds=store.retry_seconds, role="clearance")]
    witness = witness_store(settings)
    if isinstance(witness, ObjectStore):
        postures.append(read_posture(witness.client, witness.bucket, retry_seconds=witness.retry_seconds,
                                     role="witness"))
    elif witness is not None:  # not an S3 store: nothing to ask, and nothing passes unasked
        postures.append(_all_unknown(witness.bucket, "witness", None, _Unreadable(
            UnknownReason.UNEXPECTED, f"the witness store is a {type(witness).__name__}, not S3"), "none"))
    return postures


@task(name="read-storage-posture", persist_result=True, cache_key_fn=per_run_key)
def read_storage_postures() -> list[BucketPosture]:
    """Prefect task around :func:`read_promotion_postures` with the process settings: the posture as this run
    reads it (every run reads it afresh; a resumed pass gets the same one back, so the gate judging it is not
    run again)."""
    return read_promotion_postures(get_settings())

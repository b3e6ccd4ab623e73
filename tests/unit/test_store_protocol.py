"""Both stores satisfy the Store protocol, with the same signatures (so tests exercise what runs)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tasks.object_store import ObjectStore
from tasks.store import ObjectExists, ObjectStoreError, PreconditionFailed, Store, update_json_state
from tests.fakes.memory_store import MemoryStore

PROTOCOL_METHODS = sorted(name for name, value in vars(Store).items()
                          if callable(value) and not name.startswith("_"))


def _parameters(function: object) -> list[tuple[str, str]]:
    return [(p.name, p.kind.name) for p in inspect.signature(function).parameters.values()  # type: ignore[arg-type]
            if p.name != "self"]


@pytest.mark.parametrize("implementation", [ObjectStore, MemoryStore])
@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_every_store_has_every_protocol_method_with_its_parameters(implementation: type, method: str) -> None:
    assert hasattr(implementation, method), f"{implementation.__name__} lacks {method}"
    wanted = _parameters(getattr(Store, method))
    got = _parameters(getattr(implementation, method))
    assert got[: len(wanted)] == wanted, f"{implementation.__name__}.{method}{got} != Store.{method}{wanted}"
    # anything extra must be optional, so a caller of the protocol can always call it
    extra = list(inspect.signature(getattr(implementation, method)).parameters.values())[len(wanted) + 1:]
    assert all(p.default is not inspect.Parameter.empty for p in extra), (method, extra)


def test_the_protocol_covers_what_the_product_uses() -> None:
    assert {"head", "get_bytes", "put_if_absent", "put_if_match", "list_keys", "copy_verified",
            "server_time"} <= set(PROTOCOL_METHODS)
    assert isinstance(MemoryStore(), Store)


def test_the_memory_store_keeps_the_conditional_write_rules() -> None:
    store = MemoryStore()
    etag = store.put_if_absent("a", b"1")
    with pytest.raises(ObjectExists):
        store.put_if_absent("a", b"2")
    with pytest.raises(PreconditionFailed):
        store.put_if_match("a", b"3", '"stale"')
    store.put_if_match("a", b"4", etag)
    assert store.get_bytes("a")[0] == b"4"
    assert update_json_state(store, "doc", lambda d: d.__setitem__("n", d.get("n", 0) + 1)) == {"n": 1}
    assert b"".join(store.iter_chunks("a", 1)) == b"4"


class _Client:
    """A stand-in boto3 client whose HeadBucket answers with ``headers`` or raises ``error``."""

    def __init__(self, headers: dict[str, str] | None = None, error: Exception | None = None) -> None:
        self.headers = headers or {}
        self.error = error

    def head_bucket(self, **_: object) -> dict[str, object]:
        if self.error is not None:
            raise self.error
        return {"ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": self.headers}}


def test_the_object_store_clock_is_the_date_header_in_utc() -> None:
    store = ObjectStore(_Client({"date": "Wed, 25 Nov 2026 12:00:07 GMT"}), "b")
    assert store.server_time() == datetime(2026, 11, 25, 12, 0, 7, tzinfo=UTC)
    store = ObjectStore(_Client({"Date": "Wed, 25 Nov 2026 13:00:07 +0100"}), "b")
    assert store.server_time() == datetime(2026, 11, 25, 12, 0, 7, tzinfo=UTC)


@pytest.mark.parametrize("client", [
    _Client({}),
    _Client({"date": "yesterday-ish"}),
    _Client(error=EndpointConnectionError(endpoint_url="http://127.0.0.1:1")),
    _Client(error=ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {
        "HTTPStatusCode": 403, "HTTPHeaders": {"date": "Wed, 25 Nov 2026 12:00:07 GMT"}}}, "HeadBucket")),
], ids=["no-date", "bad-date", "unreachable", "denied"])
def test_the_object_store_never_falls_back_to_the_local_clock(client: _Client) -> None:
    with pytest.raises(ObjectStoreError, match="local clock is not used"):
        ObjectStore(client, "b").server_time()


def test_the_memory_store_has_its_own_settable_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import clearance.core.clock

    store = MemoryStore()
    real = store.server_time()
    assert real.tzinfo is not None and real.microsecond == 0
    monkeypatch.setattr(clearance.core.clock, "utcnow", lambda: datetime(1999, 1, 1, tzinfo=UTC))
    assert abs((store.server_time() - real).total_seconds()) < 5  # the local clock does not move it
    moment = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    store.set_time(moment)
    assert store.server_time() == moment
    store.advance(timedelta(minutes=5))
    assert store.server_time() == moment + timedelta(minutes=5)
    with pytest.raises(ValueError):
        store.set_time(datetime(2030, 1, 1))


# --------------------------------------------------------------------------- retries (a scripted S3 client)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, *_: object) -> bytes:
        data, self.data = self.data, b""
        return data

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class _ScriptedS3:
    """Objects with S3's conditional-write rules; ``faults`` are raised one per call, first to last.

    A fault ``("landed", exc)`` stores the write, then raises ``exc``: the answer was lost.
    """

    class meta:  # noqa: N801 — what boto3 clients have
        endpoint_url = "http://s3.test:9000"

    def __init__(self, faults: list[object] | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.faults = list(faults or [])
        self.calls: list[str] = []

    def _fault(self, op: str) -> object:
        self.calls.append(op)
        return self.faults.pop(0) if self.faults else None

    @staticmethod
    def _etag(body: bytes) -> str:
        import hashlib

        return '"' + hashlib.md5(body).hexdigest() + '"'

    def put_object(self, *, Key: str, Body: bytes, IfNoneMatch: str | None = None,  # noqa: N803
                   IfMatch: str | None = None, **_: object) -> dict[str, str]:
        fault = self._fault("put")
        if isinstance(fault, Exception):
            raise fault
        current = self.objects.get(Key)
        if (IfNoneMatch and current is not None) or (IfMatch and (current is None or self._etag(current) != IfMatch)):
            raise _client_error(412, "PreconditionFailed")
        self.objects[Key] = Body
        if isinstance(fault, tuple):
            raise fault[1]
        return {"ETag": self._etag(Body)}

    def get_object(self, *, Key: str, **_: object) -> dict[str, object]:
        fault = self._fault("get")
        if isinstance(fault, Exception):
            raise fault
        if Key not in self.objects:
            raise _client_error(404, "NoSuchKey")
        return {"Body": _Body(self.objects[Key]), "ETag": self._etag(self.objects[Key])}


def _closed() -> Exception:
    from botocore.exceptions import ConnectionClosedError

    return ConnectionClosedError(endpoint_url="http://s3.test:9000/b/k")


def test_transient_failures_are_retried_and_others_are_not() -> None:
    from tasks.object_store import is_transient

    transient = [_closed(), EndpointConnectionError(endpoint_url="http://x"), _client_error(503, "ServiceUnavailable"),
                 _client_error(500, "InternalError"), _client_error(502, ""), _client_error(504, ""),
                 _client_error(400, "SlowDown")]
    final = [_client_error(403, "AccessDenied"), _client_error(412, "PreconditionFailed"),
             _client_error(404, "NoSuchKey"), _client_error(400, "BadDigest")]
    assert all(map(is_transient, transient)) and not any(map(is_transient, final))
    client = _ScriptedS3([_client_error(503, "SlowDown"), _closed()])
    store = ObjectStore(client, "b", retry_seconds=10)
    assert store.put_if_absent("k", b"v") and client.objects == {"k": b"v"}
    client = _ScriptedS3([_client_error(403, "AccessDenied")])
    with pytest.raises(ObjectStoreError, match="AccessDenied"):
        ObjectStore(client, "b", retry_seconds=10).get_bytes("k")
    assert client.calls == ["get"]


def test_a_spent_window_fails_naming_the_endpoint() -> None:
    from tasks.store import StoreUnavailable

    client = _ScriptedS3([_client_error(503, "ServiceUnavailable")] * 100)
    with pytest.raises(StoreUnavailable, match=r"get s3://b/k: the object store at http://s3.test:9000 is unavailable"
                                               r": ServiceUnavailable \(HTTP 503\); gave up after \d+ attempts"):
        ObjectStore(client, "b", retry_seconds=0.3).get_bytes("k")
    assert 2 <= len(client.calls) < 10
    single = _ScriptedS3([_closed()])
    with pytest.raises(StoreUnavailable, match="gave up after 1 attempt in"):  # retry_seconds=0: one attempt
        ObjectStore(single, "b").get_bytes("k")


@pytest.mark.parametrize("write", ["put_if_absent", "put_if_match", "put_if_match_new"])
def test_a_write_whose_answer_was_lost_is_read_back_not_misreported(write: str) -> None:
    client = _ScriptedS3()
    store = ObjectStore(client, "b", retry_seconds=10)
    etag = store.put_if_absent("k", b"old")
    client.faults = [("landed", _closed())]
    if write == "put_if_absent":
        written, key = store.put_if_absent("fresh", b"new"), "fresh"
    elif write == "put_if_match":
        written, key = store.put_if_match("k", b"new", etag), "k"
    else:
        written, key = store.put_if_match("fresh", b"new", None), "fresh"
    assert written == _ScriptedS3._etag(b"new") and client.objects[key] == b"new"
    assert client.calls[-2:] == ["put", "get"]  # read back before repeating: it landed, so no repeat


def test_a_lost_answer_does_not_hide_a_real_conflict() -> None:
    client = _ScriptedS3()
    store = ObjectStore(client, "b", retry_seconds=10)
    store.put_if_absent("k", b"theirs")
    client.faults = [_closed()]
    with pytest.raises(ObjectExists):
        store.put_if_absent("k", b"ours")
    assert client.objects["k"] == b"theirs"


# --------------------------------------------------------------------------- the store probe (in memory)


class _IgnoresIfNoneMatch(MemoryStore):
    def put_if_absent(self, key: str, body: bytes, content_type: str = "") -> str:
        self.objects[key] = body
        return self._etag(body)


class _IgnoresIfMatch(MemoryStore):
    def put_if_match(self, key: str, body: bytes, expected_etag: str | None, content_type: str = "") -> str:
        self.objects[key] = body
        return self._etag(body)


class _RefusesButWrites(MemoryStore):
    def put_if_match(self, key: str, body: bytes, expected_etag: str | None, content_type: str = "") -> str:
        current = self.objects.get(key)
        self.objects[key] = body
        if current is None or self._etag(current) != expected_etag:
            raise PreconditionFailed("stale", key=key, status=412)
        return self._etag(body)


@pytest.mark.parametrize(("store", "ignored"), [
    (MemoryStore(), []),
    (_IgnoresIfNoneMatch(), ["If-None-Match (a second create-only write"]),
    (_IgnoresIfMatch(), ["If-Match (a write with a stale ETag"]),
    (_RefusesButWrites(), ["the refusals (writes answered 412 changed the object anyway)"]),
], ids=["honest", "if-none-match", "if-match", "refuses-but-writes"])
def test_the_probe_names_what_a_store_ignores_and_cleans_up(store: MemoryStore, ignored: list[str]) -> None:
    from tasks.store import ConditionalWritesIgnored
    from tasks.store_probe import probe_conditional_writes, require_conditional_writes

    found = probe_conditional_writes(store)
    assert [f[: len(i)] for f, i in zip(found, ignored, strict=True)] == ignored
    assert store.objects == {}
    if ignored:
        with pytest.raises(ConditionalWritesIgnored, match="does not enforce conditional writes"):
            require_conditional_writes(store)
        with pytest.raises(ConditionalWritesIgnored):  # failures are not cached: refused every time
            require_conditional_writes(store)
    else:
        require_conditional_writes(store)
    assert store.objects == {}


def test_the_probe_key_is_outside_every_model_s_evidence() -> None:
    from clearance.core import keys

    assert keys.store_probe_key("ab12") == "evidence/_probe/ab12.json"
    # model names are Identifiers (first character a letter or digit): "_probe" can never be one
    from pydantic import TypeAdapter, ValidationError

    from clearance.core.types import Identifier

    with pytest.raises(ValidationError):
        TypeAdapter(Identifier).validate_python("_probe")


def test_the_ledger_refuses_a_store_ignoring_create_only_writes() -> None:
    from tasks.ledger import append_entry
    from tasks.store import ConditionalWritesIgnored

    store = _IgnoresIfNoneMatch()
    with pytest.raises(ConditionalWritesIgnored, match=r"If-None-Match"):
        append_entry(store, "m", "started", {"run": "r"}, witnesses=[])
    assert store.objects == {}


class _CountingProbes(MemoryStore):
    """Counts create-only writes: a probe makes two."""

    def __init__(self) -> None:
        super().__init__()
        self.creates = 0

    def put_if_absent(self, key: str, body: bytes, content_type: str = "") -> str:
        self.creates += 1
        return super().put_if_absent(key, body, content_type)


@pytest.mark.parametrize(("age", "trusted"), [(10.0, True), (-60.0, False), (10 ** 6, False)],
                         ids=["recent", "in-the-future", "older-than-the-ttl"])
def test_a_resumed_pass_trusts_its_runs_earlier_probe_only_within_the_ttl(age: float, trusted: bool) -> None:
    """A resumed run's new process trusts the pass its first process recorded (the run's cached check) instead
    of probing again before its ledger appends — only while the TTL lasts, and never a time from the future."""
    import time

    from tasks.store_probe import forget_probes, require_conditional_writes, trust_earlier_pass

    forget_probes()
    store = _CountingProbes()
    assert trust_earlier_pass(store, time.time() - age) is trusted
    require_conditional_writes(store)
    assert store.creates == (0 if trusted else 2)
    forget_probes()

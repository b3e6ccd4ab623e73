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

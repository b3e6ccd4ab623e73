"""Both stores satisfy the Store protocol, with the same signatures (so tests exercise what runs)."""

from __future__ import annotations

import inspect

import pytest

from tasks.object_store import ObjectStore
from tasks.store import ObjectExists, PreconditionFailed, Store, update_json_state
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
    assert {"head", "get_bytes", "put_if_absent", "put_if_match", "list_keys", "copy_verified"} <= set(PROTOCOL_METHODS)
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

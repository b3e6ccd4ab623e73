"""Issue 11, finding 2: store calls ride out an outage (a SeaweedFS restart takes ~3 s) and never misreport a write.

Every fault is real: the fault proxy answers 503 or drops connections in front of the session's
SeaweedFS, or forwards a write and loses its answer.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.promotion_kit import decide, find_run, finish, make_candidate, start_direct_run, wait_for_request

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE = 3.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def failed(proxy) -> list[str]:
    return [s.answered for s in proxy.seen if s.answered in {"503", "closed"}]


# --------------------------------------------------------------------------- outages inside the window


@pytest.mark.parametrize("mode", ["503", "close"])
def test_put_get_and_copy_ride_out_an_outage(proxy, proxied_store, mode):
    store = proxied_store
    source = os.urandom(4096)
    store.put_if_absent("candidates/m/1/model.bin", source)
    store.put_if_absent("read-me.json", b'{"x": 1}')
    proxy.outage(OUTAGE, mode)
    began = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        put = pool.submit(store.put_if_absent, "written.json", b'{"y": 2}')
        got = pool.submit(store.get_bytes, "read-me.json")
        copied = pool.submit(store.copy_verified, "candidates/m/1/model.bin", "production/m/1/model.bin", sha(source))
        results = put.result(), got.result(), copied.result()
    took = time.monotonic() - began
    assert OUTAGE - 0.5 < took < OUTAGE + 5, took  # waited the outage out, and not much longer
    assert len(failed(proxy)) >= 3  # each call met the outage
    put_etag, (read, _), copy_etag = results
    assert store.get_bytes("written.json") == (b'{"y": 2}', put_etag)
    assert read == b'{"x": 1}'
    assert store.sha256_of("production/m/1/model.bin") == (sha(source), len(source))
    assert store.head("production/m/1/model.bin").etag == copy_etag


@pytest.mark.parametrize("size", ["single-put", "multipart"])
def test_an_outage_in_the_middle_of_a_copy_is_ridden_out(proxy, proxied_store, size):
    from tasks.object_store import PART_SIZE

    store = proxied_store
    body = os.urandom(4096 if size == "single-put" else PART_SIZE + 1024 * 1024 + 5)
    store.put_if_absent("candidates/m/2/model.bin", body)
    dst = "production/m/2/model.bin"
    if size == "single-put":  # right after the source is read: the write and the check meet the outage
        proxy.fail_after(lambda method, path: method == "GET" and path.endswith("/candidates/m/2/model.bin"),
                         OUTAGE, "close")
    else:  # right after the first part: the second part and the completion meet it
        proxy.fail_after(lambda method, path: method == "PUT" and path.endswith("/" + dst), OUTAGE, "503")
    store.copy_verified("candidates/m/2/model.bin", dst, sha(body))
    assert failed(proxy)
    assert store.sha256_of(dst) == (sha(body), len(body))
    pending = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.key_prefix)
    assert not pending.get("Uploads")


def test_an_outage_longer_than_the_window_fails_naming_the_endpoint(proxy, proxied_store):
    from tasks.store import StoreUnavailable

    store = proxied_store
    store.retry_seconds = 1.5
    proxy.outage(30, "503")
    began = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.put_if_absent("never.json", b"{}")
    assert 1.5 <= time.monotonic() - began < 4
    message = str(caught.value)
    assert f"the object store at {proxy.url} is unavailable" in message and "ServiceUnavailable (HTTP 503)" in message
    assert "CLEARANCE_S3_RETRY_SECONDS" in message and caught.value.status == 503
    proxy.outage(30, "close")
    with pytest.raises(StoreUnavailable, match=f"the object store at {proxy.url} is unavailable"):
        store.head("never.json")
    proxy.heal()
    assert store.head("never.json") is None  # 503s were never forwarded: nothing was written


# --------------------------------------------------------------------------- a write whose answer was lost


def _lose_answer_to(proxy, key: str, seconds: float = 1.0) -> None:
    proxy.fail_after(lambda method, path: method == "PUT" and path.endswith("/" + key), seconds, "close",
                     lose_answer=True)


def test_a_create_only_write_whose_answer_was_lost_is_success_not_object_exists(proxy, proxied_store, monkeypatch):
    from tasks.store import ObjectExists

    store = proxied_store
    # Without the read-back the retry meets the write that landed: that is what callers used to be told.
    with monkeypatch.context() as patched:
        patched.setattr(store, "_holds", lambda key, body, window: None)
        _lose_answer_to(proxy, "ledger/000000000001.json")
        with pytest.raises(ObjectExists):
            store.put_if_absent("ledger/000000000001.json", b"entry one")
    assert [s.answered for s in proxy.seen if s.path.endswith("/ledger/000000000001.json")][0] == "lost"

    _lose_answer_to(proxy, "ledger/000000000002.json")
    etag = store.put_if_absent("ledger/000000000002.json", b"entry two")
    assert "lost" in [s.answered for s in proxy.seen if s.path.endswith("/ledger/000000000002.json")]
    assert store.get_bytes("ledger/000000000002.json") == (b"entry two", etag)
    # Someone else's object under the key is still a conflict after a lost answer.
    store.put_if_absent("ledger/000000000003.json", b"theirs")
    proxy.outage(1.0, "close")
    with pytest.raises(ObjectExists):
        store.put_if_absent("ledger/000000000003.json", b"ours")
    assert store.get_bytes("ledger/000000000003.json")[0] == b"theirs"


def test_a_compare_and_swap_whose_answer_was_lost_is_success(proxy, proxied_store, monkeypatch):
    from tasks.store import PreconditionFailed

    store = proxied_store
    first = store.put_if_match("CURRENT.json", b"v1", None)
    with monkeypatch.context() as patched:
        patched.setattr(store, "_holds", lambda key, body, window: None)
        _lose_answer_to(proxy, "CURRENT.json")
        with pytest.raises(PreconditionFailed):  # the swap landed; its repeat is refused
            store.put_if_match("CURRENT.json", b"v2", first)
    second = store.head("CURRENT.json").etag
    _lose_answer_to(proxy, "CURRENT.json")
    third = store.put_if_match("CURRENT.json", b"v3", second)
    assert store.get_bytes("CURRENT.json") == (b"v3", third)


def test_a_copy_whose_write_answer_was_lost_is_success(proxy, proxied_store):
    store = proxied_store
    body = os.urandom(2048)
    store.put_if_absent("candidates/m/4/model.bin", body)
    _lose_answer_to(proxy, "production/m/4/model.bin")
    etag = store.copy_verified("candidates/m/4/model.bin", "production/m/4/model.bin", sha(body))
    assert "lost" in [s.answered for s in proxy.seen]
    assert store.head("production/m/4/model.bin").etag == etag


# --------------------------------------------------------------------------- a real promotion through an outage


@pytest.mark.slow
def test_a_promotion_rides_out_a_six_second_outage_during_the_copy(s3, proxy, proxied_env, tmp_path):
    from clearance.core.ledger_kinds import TERMINAL
    from tasks.ledger import read_ledger
    from tasks.promotion import read_pointer

    cand = make_candidate(tmp_path, s3)  # s3 talks to the store directly; the run and decisions go through the proxy
    log = tmp_path / "run.log"
    proc = start_direct_run(cand, "1.0.0", log=log)
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert decide(s3, cand, run_id, "sam").accepted
    # The copy's write reaches the store, its answer is lost, and the store is gone for 6 s.
    target = f"/production/{cand.model}/1.0.0/model.joblib"
    proxy.fail_after(lambda method, path: method == "PUT" and path.endswith(target), 6.0, "close", lose_answer=True)
    assert decide(s3, cand, run_id, "bea").accepted
    began = time.monotonic()
    assert finish(proc, timeout=180) == 0, log.read_text()[-4000:]
    assert time.monotonic() - began > 5.5  # it really waited the outage out

    assert [s.answered for s in proxy.seen if s.path.endswith(target) and s.method == "PUT"][0] == "lost"
    assert len(failed(proxy)) >= 2
    assert read_pointer(s3, "production", cand.model).pointer.version == "1.0.0"
    assert s3.sha256_of(f"production/{cand.model}/1.0.0/model.joblib")[0] == cand.digests["1.0.0"]
    kinds = [e.kind for e in read_ledger(s3, cand.model)]
    assert kinds[-1] == "promoted" and sum(kind in {k.value for k in TERMINAL} for kind in kinds) == 1, kinds

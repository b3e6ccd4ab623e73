"""The fault proxy itself: it forwards faithfully, and each fault it is told to make happens for real."""

from __future__ import annotations

import time

import pytest

from tests.fakes.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration


@pytest.fixture()
def proxied(s3_service, tmp_path):
    from clearance.settings import Settings
    from tasks.object_store import ObjectStore

    proxy = FaultProxy(s3_service.endpoint_url, s3_service.access_key_id, s3_service.secret_access_key,
                       s3_service.region).start()
    settings = Settings(s3_endpoint_url=proxy.url, s3_access_key_id=s3_service.access_key_id,
                        s3_secret_access_key=s3_service.secret_access_key, s3_region=s3_service.region,
                        bucket=s3_service.bucket, s3_retry_seconds=0)  # see each fault raw: no retry window
    store = ObjectStore.from_settings(settings, key_prefix=f"proxy-{time.time_ns()}/")
    try:
        yield proxy, store
    finally:
        proxy.stop()


def test_forwards_reads_writes_and_conditional_writes(proxied):
    from tasks.store import ObjectExists

    proxy, store = proxied
    etag = store.put_if_absent("a", b"hello" * 1000)
    assert store.get_bytes("a") == (b"hello" * 1000, etag)
    assert store.head("a").size == 5000
    with pytest.raises(ObjectExists):
        store.put_if_absent("a", b"other")
    assert [s.answered for s in proxy.seen].count("forwarded") >= 4


def test_stripping_conditional_headers_makes_the_store_ignore_them(proxied):
    proxy, store = proxied
    store.put_if_absent("b", b"first")
    proxy.strip_conditional = True
    store.put_if_absent("b", b"second")  # a lying gateway: no 412, the object is replaced
    assert store.get_bytes("b")[0] == b"second"
    assert any("If-None-Match" in s.headers for s in proxy.seen)


@pytest.mark.parametrize("mode", ["503", "close"])
def test_an_outage_fails_requests_until_it_ends(proxied, s3_service, mode):
    import boto3
    from botocore.config import Config

    from tasks.object_store import ObjectStore
    from tasks.store import ObjectStoreError

    proxy, _ = proxied
    client = boto3.session.Session().client(
        "s3", endpoint_url=proxy.url, region_name=s3_service.region, aws_access_key_id=s3_service.access_key_id,
        aws_secret_access_key=s3_service.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"}))
    store = ObjectStore(client, s3_service.bucket, key_prefix=f"outage-{time.time_ns()}/")
    proxy.outage(1.0, mode)
    with pytest.raises(ObjectStoreError):
        store.head("c")
    assert proxy.seen[-1].answered == ("503" if mode == "503" else "closed")
    time.sleep(1.1)
    assert store.head("c") is None  # healed: the object simply does not exist


def test_fail_after_starts_an_outage_right_after_the_chosen_request(proxied):
    from tasks.store import ObjectStoreError

    proxy, store = proxied
    proxy.fail_after(lambda method, path: method == "PUT" and path.endswith("/CURRENT.json"), seconds=30)
    store.put_if_absent("x.json", b"{}")
    store.put_if_absent("CURRENT.json", b"{}")  # goes through; everything after it fails
    with pytest.raises(ObjectStoreError):
        store.head("x.json")
    proxy.heal()
    assert store.head("CURRENT.json") is not None

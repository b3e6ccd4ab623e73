"""Issue 11, finding 1: a store that ignores If-None-Match / If-Match is refused, never used without notice.

The lie is real: the fault proxy drops the conditional headers and re-signs the request, as an S3
gateway that ignores them would, in front of the session's SeaweedFS (which then overwrites).
"""

from __future__ import annotations

import time
from uuid import UUID

import pytest

from tests.integration.promotion_kit import find_run, finish, make_candidate, start_direct_run

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PROBE_PATH = "/evidence/_probe/"


def probe_requests(proxy) -> list:
    return [s for s in proxy.seen if PROBE_PATH in s.path]


def test_a_promotion_on_a_store_ignoring_conditional_writes_is_refused_before_anything_is_written(
        s3, proxy, proxied_env, tmp_path):
    cand = make_candidate(tmp_path, s3)  # uploaded directly (s3 is not proxied); the run goes through the proxy
    before = set(s3.list_keys(""))
    proxy.strip_conditional = True
    log = tmp_path / "run.log"
    proc = start_direct_run(cand, "1.0.0", log=log)
    assert finish(proc) != 0, log.read_text()[-3000:]

    output = log.read_text()
    assert "does not enforce conditional writes" in output and proxy.url in output, output[-3000:]
    assert "If-None-Match" in output and "If-Match" in output
    from prefect import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(find_run(cand.model, "1.0.0"))).state
    assert state is not None and state.type.value == "FAILED"
    assert "does not enforce conditional writes" in (state.message or ""), state.message

    # The lie was real (the headers were sent and dropped) and it was caught before any write of the run.
    assert any("If-None-Match" in s.headers for s in probe_requests(proxy))
    assert s3.list_keys(f"production/{cand.model}/") == []
    assert s3.list_keys(f"evidence/{cand.model}/") == []  # no ledger entry, no run evidence
    assert set(s3.list_keys("")) - before == set()  # the probe deleted its object too
    writes = [s for s in proxy.seen if s.method in {"PUT", "POST", "DELETE"} and PROBE_PATH not in s.path]
    assert writes == [], writes


def test_append_entry_refuses_a_store_ignoring_conditional_writes(proxy, proxied_store):
    from tasks.ledger import append_entry
    from tasks.store import ConditionalWritesIgnored

    proxy.strip_conditional = True
    with pytest.raises(ConditionalWritesIgnored) as caught:
        append_entry(proxied_store, "lying-model", "started", {"run": "r"}, witnesses=[])
    message = str(caught.value)
    assert proxy.url in message and f"bucket {proxied_store.bucket}" in message
    assert "If-None-Match (a second create-only write" in message and "If-Match (a write with a stale ETag" in message
    assert proxied_store.list_keys("") == []  # no ledger entry; the probe object is gone
    with pytest.raises(ConditionalWritesIgnored):  # a failed probe is not cached as anything: still refused
        append_entry(proxied_store, "lying-model", "started", {"run": "r"}, witnesses=[])


def test_an_honest_store_passes_once_per_endpoint_and_bucket_and_again_after_the_ttl(
        proxy, proxied_store, s3_service, monkeypatch):
    from clearance.settings import Settings, get_settings
    from tasks.ledger import append_entry, read_ledger
    from tasks.object_store import ObjectStore
    from tasks.store_probe import require_conditional_writes
    from tests.fakes.fault_proxy import FaultProxy

    require_conditional_writes(proxied_store)
    first = len(probe_requests(proxy))
    methods = sorted(s.method for s in probe_requests(proxy))
    assert methods == ["DELETE", "GET", "HEAD", "PUT", "PUT", "PUT", "PUT"], methods
    for kind in ("started", "gate"):  # appends use the cached pass
        append_entry(proxied_store, "honest-model", kind, {"run": "r"}, witnesses=[])
    require_conditional_writes(proxied_store)
    assert len(probe_requests(proxy)) == first
    assert [e.seq for e in read_ledger(proxied_store, "honest-model")] == [1, 2]
    assert proxied_store.list_keys("evidence/_probe/") == []

    # Another bucket on the same endpoint is probed on its own (and a missing bucket is no pass).
    other_bucket = ObjectStore(proxied_store.client, "no-such-bucket-here", retry_seconds=0)
    from tasks.store import ObjectStoreError

    with pytest.raises(ObjectStoreError):
        require_conditional_writes(other_bucket)
    assert len(probe_requests(proxy)) > first

    # Another endpoint (a second proxy in front of the same store) is probed on its own.
    second = FaultProxy(s3_service.endpoint_url, s3_service.access_key_id, s3_service.secret_access_key,
                        s3_service.region).start()
    try:
        settings = Settings(s3_endpoint_url=second.url, s3_access_key_id=s3_service.access_key_id,
                            s3_secret_access_key=s3_service.secret_access_key, s3_region=s3_service.region,
                            bucket=s3_service.bucket)
        require_conditional_writes(ObjectStore.from_settings(settings, key_prefix=proxied_store.key_prefix))
        assert len(probe_requests(second)) == 7
    finally:
        second.stop()

    # After the TTL the same store is probed again.
    monkeypatch.setenv("CLEARANCE_S3_PROBE_TTL_SECONDS", "0.5")
    get_settings.cache_clear()
    try:
        counted = len(probe_requests(proxy))
        time.sleep(0.6)
        require_conditional_writes(proxied_store)
        assert len(probe_requests(proxy)) == counted + 7
    finally:
        monkeypatch.delenv("CLEARANCE_S3_PROBE_TTL_SECONDS")
        get_settings.cache_clear()

"""tasks.object_store against a real SeaweedFS (weed mini with signature checking)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from clearance.settings import Settings
from tasks.object_store import (
    PART_SIZE,
    AccessDenied,
    ChecksumMismatch,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    sha256_b64,
)

pytestmark = pytest.mark.integration

BIG = os.urandom(PART_SIZE + 3 * 1024 * 1024 + 17)  # > one part: exercises the multipart path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- reads


def test_head_get_list_and_missing_keys(store: ObjectStore) -> None:
    assert store.head("nope.json") is None
    with pytest.raises(ObjectNotFound) as caught:
        store.get_bytes("nope.json")
    assert caught.value.key == "nope.json" and caught.value.bucket == store.bucket

    etag = store.put_if_absent("a/1.json", b'{"x": 1}', content_type="application/json")
    store.put_if_absent("a/2.json", b"{}", content_type="application/json")
    store.put_if_absent("b/3.json", b"{}")
    info = store.head("a/1.json")
    assert info is not None and info.size == 8 and info.etag == etag
    assert info.checksum_sha256 == sha(b'{"x": 1}')  # the server kept the checksum we sent
    assert store.get_json("a/1.json") == {"x": 1}
    assert store.get_bytes("a/1.json") == (b'{"x": 1}', etag)
    assert store.list_keys("a/") == ["a/1.json", "a/2.json"]  # relative to the test's prefix
    assert store.read_range("a/1.json", 1, 3) == b'"x"'
    assert store.read_range("a/1.json", 100, 3) == b""


def test_sha256_of_multi_mb_object_matches_hashlib(store: ObjectStore) -> None:
    store.put_if_absent("big.bin", BIG)
    assert store.sha256_of("big.bin") == (sha(BIG), len(BIG))
    assert b"".join(store.iter_chunks("big.bin", 1_000_000)) == BIG


# ----------------------------------------------------------------- conditional writes


def test_put_if_absent_twice_raises_and_keeps_the_first(store: ObjectStore) -> None:
    store.put_if_absent("ledger/000001.json", b"first")
    with pytest.raises(ObjectExists) as caught:
        store.put_if_absent("ledger/000001.json", b"second")
    assert caught.value.status == 412 and caught.value.key == "ledger/000001.json"
    with pytest.raises(ObjectExists):  # identical bytes are still a second write
        store.put_if_absent("ledger/000001.json", b"first")
    assert store.get_bytes("ledger/000001.json")[0] == b"first"


def test_put_if_match_is_compare_and_swap(store: ObjectStore) -> None:
    first = store.put_if_match("CURRENT.json", b"v1", None)
    with pytest.raises(PreconditionFailed):  # None means "create only"
        store.put_if_match("CURRENT.json", b"v1-again", None)
    second = store.put_if_match("CURRENT.json", b"v2", first)
    assert second != first
    with pytest.raises(PreconditionFailed):  # stale ETag
        store.put_if_match("CURRENT.json", b"v3", first)
    with pytest.raises(PreconditionFailed):  # an ETag on a key that does not exist
        store.put_if_match("missing.json", b"v1", first)
    assert store.get_bytes("CURRENT.json") == (b"v2", second)


def test_two_writers_with_the_same_etag_exactly_one_wins(store: ObjectStore) -> None:
    etag = store.put_if_match("record.json", b"start", None)
    barrier = threading.Barrier(8)
    outcomes: dict[int, str] = {}

    def writer(n: int) -> None:
        barrier.wait()
        try:
            store.put_if_match("record.json", f"writer-{n}".encode(), etag)
            outcomes[n] = "won"
        except PreconditionFailed:
            outcomes[n] = "lost"

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 8 and len(winners) == 1
    assert store.get_bytes("record.json")[0] == f"writer-{winners[0]}".encode()


# ----------------------------------------------------------------- what the server enforces


def test_wrong_secret_key_is_refused(s3_service, store: ObjectStore) -> None:
    wrong = Settings(s3_secret_access_key="not-the-secret")
    bad = ObjectStore.from_settings(wrong, key_prefix=store.key_prefix)
    with pytest.raises(AccessDenied) as caught:
        bad.put_if_absent("x.json", b"{}")
    assert caught.value.status == 403
    assert s3_service.secret_access_key not in str(caught.value)
    with pytest.raises(AccessDenied):
        bad.list_keys("")
    unknown = ObjectStore.from_settings(Settings(s3_access_key_id="AKNOBODY"), key_prefix=store.key_prefix)
    with pytest.raises(AccessDenied):
        unknown.get_bytes("x.json")
    assert store.head("x.json") is None


def test_server_rejects_a_wrong_sha256_checksum(store: ObjectStore) -> None:
    key = store.key_prefix + "damaged.bin"
    with pytest.raises(ClientError) as caught:
        store.client.put_object(Bucket=store.bucket, Key=key, Body=b"payload", ChecksumSHA256=sha256_b64(b"other"))
    assert caught.value.response["Error"]["Code"] == "BadDigest"
    assert store.head("damaged.bin") is None


def test_server_honours_if_none_match_on_complete_multipart_upload(store: ObjectStore) -> None:
    key = store.key_prefix + "mp.bin"
    store.put_if_absent("mp.bin", b"already here")
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key, ChecksumAlgorithm="SHA256")
    part = store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                                    Body=b"late", ChecksumSHA256=sha256_b64(b"late"))
    with pytest.raises(ClientError) as caught:
        store.client.complete_multipart_upload(
            Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"],
                                        "ChecksumSHA256": sha256_b64(b"late")}]})
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"])
    assert store.get_bytes("mp.bin")[0] == b"already here"


# ----------------------------------------------------------------- verified copy


@pytest.mark.parametrize("body", [b"small model bytes", BIG], ids=["single-put", "multipart"])
def test_copy_verified_copies_and_verifies(store: ObjectStore, body: bytes) -> None:
    store.put_if_absent("candidates/m/1/model.bin", body)
    etag = store.copy_verified("candidates/m/1/model.bin", "production/m/1/model.bin", sha(body))
    info = store.head("production/m/1/model.bin")
    assert info is not None and info.etag == etag and info.size == len(body)
    assert store.sha256_of("production/m/1/model.bin") == (sha(body), len(body))


@pytest.mark.parametrize("body", [b"swapped bytes", BIG], ids=["single-put", "multipart"])
def test_copy_verified_refuses_a_source_with_another_digest(store: ObjectStore, body: bytes) -> None:
    store.put_if_absent("candidates/m/1/model.bin", body)
    with pytest.raises(ChecksumMismatch):
        store.copy_verified("candidates/m/1/model.bin", "production/m/1/model.bin", sha(b"what was approved"))
    assert store.head("production/m/1/model.bin") is None
    pending = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.key_prefix)
    assert not pending.get("Uploads")  # an aborted multipart copy leaves no parts behind


@pytest.mark.parametrize("body", [b"new model", BIG], ids=["single-put", "multipart"])
def test_copy_verified_never_overwrites_the_destination(store: ObjectStore, body: bytes) -> None:
    store.put_if_absent("candidates/m/2/model.bin", body)
    store.put_if_absent("production/m/2/model.bin", b"the promoted one")
    with pytest.raises(ObjectExists):
        store.copy_verified("candidates/m/2/model.bin", "production/m/2/model.bin", sha(body))
    assert store.get_bytes("production/m/2/model.bin")[0] == b"the promoted one"


@pytest.mark.parametrize("body", [b"new model", BIG], ids=["single-put", "multipart"])
def test_copy_verified_race_with_a_concurrent_writer_is_refused_by_the_server(
        store: ObjectStore, body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The destination appears after the early existence check: the conditional write must refuse."""
    store.put_if_absent("candidates/m/3/model.bin", body)
    store.put_if_absent("production/m/3/model.bin", b"written meanwhile")
    real_head = store.head
    monkeypatch.setattr(store, "head", lambda key: None if key == "production/m/3/model.bin" else real_head(key))
    with pytest.raises(ObjectExists):
        store.copy_verified("candidates/m/3/model.bin", "production/m/3/model.bin", sha(body))
    assert store.get_bytes("production/m/3/model.bin")[0] == b"written meanwhile"


def test_copy_verified_missing_source(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.copy_verified("candidates/none.bin", "production/none.bin", sha(b""))
    assert store.head("production/none.bin") is None


# ----------------------------------------------------------------- outages and the store probe (issue 11)


def test_from_settings_retries_over_the_configured_window_with_one_botocore_attempt(s3_service) -> None:
    settings = Settings(s3_retry_seconds=7.5)
    built = ObjectStore.from_settings(settings)
    assert built.retry_seconds == 7.5 and built.endpoint == s3_service.endpoint_url
    assert built.client.meta.config.retries["total_max_attempts"] == 1
    assert ObjectStore.from_settings(Settings()).retry_seconds == 30  # the default rides out a restart (~3 s)


def test_a_broken_stream_resumes_at_its_offset_on_the_same_version(store: ObjectStore, monkeypatch) -> None:
    """A GET whose body breaks half-way is continued with a ranged GET pinned to the first ETag."""
    from botocore.exceptions import ResponseStreamingError

    store.retry_seconds = 10
    store.put_if_absent("stream.bin", BIG)
    real_get = store.client.get_object
    requests: list[dict] = []

    class Breaking:
        def __init__(self, body, after: int) -> None:
            self.body, self.left = body, after

        def read(self, size: int = -1) -> bytes:
            if self.left <= 0:
                raise ResponseStreamingError(error="connection reset mid-body")
            chunk = self.body.read(min(size, self.left))
            self.left -= len(chunk)
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.body.close()

    def get_object(**kwargs):
        requests.append(kwargs)
        answer = real_get(**kwargs)
        if len(requests) == 1:
            answer["Body"] = Breaking(answer["Body"], 3 * 1024 * 1024 + 5)
        return answer

    monkeypatch.setattr(store.client, "get_object", get_object)
    assert store.sha256_of("stream.bin") == (sha(BIG), len(BIG))
    assert len(requests) == 2 and requests[1]["Range"] == f"bytes={3 * 1024 * 1024 + 5}-"
    assert requests[1]["IfMatch"] == store.head("stream.bin").etag


def test_seaweedfs_passes_the_store_probe_and_keeps_nothing_of_it(store: ObjectStore) -> None:
    from tasks.store_probe import probe_conditional_writes

    assert probe_conditional_writes(store) == []
    assert store.list_keys("") == []


@pytest.mark.slow
def test_writes_and_reads_ride_out_a_real_seaweedfs_restart(tmp_path, caplog) -> None:
    """Not a proxy: a SeaweedFS of this test is stopped and started again on its ports (takes ~3 s)."""
    import time

    from clearance.dev import devservers

    service = devservers.start_s3(tmp_path / "restarting", bucket="restart-test")
    settings = Settings(s3_endpoint_url=service.endpoint_url, s3_access_key_id=service.access_key_id,
                        s3_secret_access_key=service.secret_access_key, bucket=service.bucket)
    store = ObjectStore.from_settings(settings)
    store.put_if_absent("before.json", b"{}")
    restarted: list[devservers.S3Service] = []

    def restart() -> None:
        state = Path(service.log_path).parent
        devservers.stop(service)
        pid = devservers._spawn(devservers._weed_argv(state, service.ports, state / "s3-identities.json",
                                                      service.bucket),
                                Path(service.log_path), env=devservers._weed_env(state), cwd=state)
        restarted.append(dataclasses.replace(service, pid=pid))

    try:
        thread = threading.Thread(target=restart)
        thread.start()
        time.sleep(0.5)  # stopping has begun: what follows meets the restart
        with caplog.at_level("WARNING", logger="clearance.store"):
            etag = store.put_if_absent("during.json", b'{"during": true}')
        assert store.get_bytes("before.json")[0] == b"{}"
        thread.join()
        assert store.get_bytes("during.json") == (b'{"during": true}', etag)
        assert f"the object store at {service.endpoint_url} may be restarting" in caplog.text  # it met the restart
    finally:
        thread.join()
        for running in restarted or [service]:
            devservers.stop(running)

"""Unfinished multipart uploads on the real SeaweedFS: listed, aborted (also twice), and the bucket's
lifecycle rule that aborts them — stored, read back, other rules kept. Whether SeaweedFS acts on the
rule is not tested here (it would take a day, and needs its lifecycle worker): the crash sweep
(tasks/crashes.py) aborts what killed copies leave either way."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest

pytestmark = pytest.mark.integration


def _start_upload(store, key: str) -> str:
    """Begin a multipart upload with one part and leave it unfinished, as a copy killed midway does."""
    part = b"x" * 1024
    upload_id = store.client.create_multipart_upload(Bucket=store.bucket, Key=store.key_prefix + key,
                                                     ChecksumAlgorithm="SHA256")["UploadId"]
    store.client.upload_part(Bucket=store.bucket, Key=store.key_prefix + key, UploadId=upload_id, PartNumber=1,
                             Body=part, ChecksumSHA256=base64.b64encode(hashlib.sha256(part).digest()).decode())
    return upload_id


def test_unfinished_uploads_are_listed_and_aborted_under_a_prefix_only(store) -> None:
    kept = _start_upload(store, "production/keep/1.0/model.joblib")
    first = _start_upload(store, "production/m/1.0/model.joblib")
    second = _start_upload(store, "production/m/1.0/weights.bin")
    listed = store.list_multipart_uploads("production/m/")
    assert {u.upload_id for u in listed} == {first, second}
    assert {u.key for u in listed} == {"production/m/1.0/model.joblib", "production/m/1.0/weights.bin"}
    assert all(u.initiated is not None and u.initiated.tzinfo is not None for u in listed)
    assert store.list_keys("production/") == []  # parts are no object

    now = store.server_time()
    assert store.abort_multipart_uploads("production/m/", initiated_before=now - timedelta(hours=1)) == []
    gone = store.abort_multipart_uploads("production/m/")
    assert {u.upload_id for u in gone} == {first, second}
    assert store.list_multipart_uploads("production/m/") == []
    assert [u.upload_id for u in store.list_multipart_uploads("production/")] == [kept]
    assert store.abort_multipart_uploads("production/m/") == []  # nothing left: nothing to do


def test_the_bucket_gets_a_rule_aborting_incomplete_uploads_and_keeps_its_other_rules(s3_service, store) -> None:
    from tasks.object_store import UPLOAD_CLEANUP_RULE

    # The session's bucket got it when devservers created it (SeaweedFS 4.48 stores and returns it).
    assert s3_service.upload_cleanup == "stored", s3_service.upload_cleanup
    client, bucket = store.client, store.bucket
    before = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    other = {"ID": "expire-scratch", "Status": "Enabled", "Filter": {"Prefix": "scratch/"},
             "Expiration": {"Days": 30}}
    try:
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
        assert store.ensure_upload_cleanup_rule() is True
        rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
        assert rules["expire-scratch"]["Expiration"]["Days"] == 30
        assert rules[UPLOAD_CLEANUP_RULE]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
        assert store.ensure_upload_cleanup_rule() is False  # there already: nothing written
    finally:
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": before})

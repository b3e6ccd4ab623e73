"""Reading the storage posture (tasks/storage_posture.py) against real S3 servers, judged by the gate's rules.

- The session's SeaweedFS (4.48, ``weed mini``): encryption, versioning, bucket policy and ACL are implemented
  and read on/off as configured here — and what the policy or ACL reading says about anonymous reads is
  checked against an unsigned GET of a real object; GetPublicAccessBlock is not implemented (501) and reads
  as unknown, never pass. Wrong credentials, a missing bucket and an endpoint that does not answer are
  unknown with their reason.
- Behind the fault proxy (tests/fakes/fault_proxy.py): a short outage is ridden out with the store's retries;
  an outage midway leaves the aspects not yet read unknown (unavailable), without asking again.
- moto's S3 server (a second, real HTTP implementation) implements GetPublicAccessBlock, so the on/off
  paths SeaweedFS cannot show are shown there, with encryption and policies.

Each test makes its own bucket: the session bucket's posture is only read, never changed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clearance.dev.devservers import free_ports
from clearance.settings import Settings, get_settings
from gates.base import Status
from gates.security_scan.posture import ASPECTS, BucketPosture, UnknownReason, judge_posture
from tasks.object_store import ObjectStore
from tasks.storage_posture import read_posture, read_promotion_postures, read_storage_postures
from tests.fakes.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

ALL_BLOCKED = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
               "RestrictPublicBuckets": True}


def public_read(bucket: str, **condition: Any) -> str:
    """A bucket policy letting everyone GetObject (restricted by ``condition`` when given)."""
    statement: dict[str, Any] = {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                 "Resource": f"arn:aws:s3:::{bucket}/*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def states(posture: BucketPosture) -> dict[str, str]:
    return {aspect: reading.state for aspect, reading in posture.readings()}


def statuses(posture: BucketPosture, *, unknown: Any = "warn", require: set[str] | None = None) -> dict[str, Status]:
    checks = judge_posture([posture], unknown=unknown, require=set(ASPECTS) if require is None else require)
    return {c.id.rsplit(":", 1)[1]: c.status for c in checks}


def _empty_and_delete(client: Any, bucket: str) -> None:
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except ClientError:
        pass  # best effort: a bucket left behind dies with the session's SeaweedFS


# --------------------------------------------------------------------------- SeaweedFS


@pytest.fixture
def weed(s3_service) -> ObjectStore:
    """The session's SeaweedFS through the product's own client construction (settings → ObjectStore)."""
    return ObjectStore.from_settings(Settings())


@pytest.fixture
def weed_bucket(weed: ObjectStore) -> Iterator[str]:
    """A fresh bucket of this test's own on the session's SeaweedFS."""
    bucket = f"posture-{uuid.uuid4().hex[:10]}"
    weed.client.create_bucket(Bucket=bucket)
    yield bucket
    _empty_and_delete(weed.client, bucket)


def unsigned_get(endpoint: str, bucket: str, key: str) -> int:
    """HTTP status of an anonymous (unsigned) GET of an object."""
    try:
        with urllib.request.urlopen(f"{endpoint}/{bucket}/{key}", timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_seaweedfs_fresh_bucket_reads_off_and_public_access_block_is_unknown(weed: ObjectStore,
                                                                            weed_bucket: str) -> None:
    posture = read_posture(weed.client, weed_bucket, retry_seconds=weed.retry_seconds)
    assert posture.bucket == weed_bucket and posture.endpoint == weed.endpoint
    assert states(posture) == {"encryption": "off", "versioning": "off", "public_access_block": "unknown",
                               "policy": "on"}
    assert posture.versioning.detail == "never enabled"
    pab = posture.public_access_block
    assert pab.reason is UnknownReason.NOT_IMPLEMENTED and pab.error == "NotImplemented (HTTP 501)"
    assert pab.calls == ("GetPublicAccessBlock",)
    # Judged: unknown is the tier's choice, never pass; off fails where required, warns elsewhere.
    assert statuses(posture, unknown="warn")["public_access_block"] == Status.WARN
    assert statuses(posture, unknown="fail")["public_access_block"] == Status.FAIL
    assert statuses(posture, require={"encryption"}) == {
        "encryption": Status.FAIL, "versioning": Status.WARN, "public_access_block": Status.WARN,
        "policy": Status.PASS}


def test_seaweedfs_public_access_block_cannot_even_be_set(weed: ObjectStore, weed_bucket: str) -> None:
    """Why the reading is unknown and not off: SeaweedFS 4.48 has no such configuration at all."""
    with pytest.raises(ClientError) as refused:
        weed.client.put_public_access_block(Bucket=weed_bucket, PublicAccessBlockConfiguration=ALL_BLOCKED)
    assert refused.value.response["Error"]["Code"] == "NotImplemented"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert read_posture(weed.client, weed_bucket).public_access_block.state == "unknown"


def test_seaweedfs_versioning_enabled_then_suspended(weed: ObjectStore, weed_bucket: str) -> None:
    weed.client.put_bucket_versioning(Bucket=weed_bucket, VersioningConfiguration={"Status": "Enabled"})
    posture = read_posture(weed.client, weed_bucket)
    assert posture.versioning.state == "on" and posture.versioning.detail == "Enabled"
    assert statuses(posture)["versioning"] == Status.PASS

    weed.client.put_bucket_versioning(Bucket=weed_bucket, VersioningConfiguration={"Status": "Suspended"})
    posture = read_posture(weed.client, weed_bucket)
    assert posture.versioning.state == "off" and posture.versioning.detail == "Suspended"
    assert statuses(posture, require={"versioning"})["versioning"] == Status.FAIL


def test_seaweedfs_default_encryption_on_and_applied_then_off(weed: ObjectStore, weed_bucket: str) -> None:
    weed.client.put_bucket_encryption(Bucket=weed_bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    posture = read_posture(weed.client, weed_bucket)
    assert posture.encryption.state == "on" and posture.encryption.detail == "AES256"
    assert statuses(posture)["encryption"] == Status.PASS
    # SeaweedFS does not only store the configuration: a new object comes back encrypted by default.
    weed.client.put_object(Bucket=weed_bucket, Key="probe.txt", Body=b"x")
    assert weed.client.head_object(Bucket=weed_bucket, Key="probe.txt").get("ServerSideEncryption") == "AES256"

    weed.client.delete_bucket_encryption(Bucket=weed_bucket)
    posture = read_posture(weed.client, weed_bucket)
    assert posture.encryption.state == "off"
    assert statuses(posture, require={"encryption"})["encryption"] == Status.FAIL


def test_seaweedfs_public_policy_is_an_anonymous_read_and_really_is_one(weed: ObjectStore, weed_bucket: str) -> None:
    weed.client.put_object(Bucket=weed_bucket, Key="model.joblib", Body=b"weights")
    assert unsigned_get(weed.endpoint, weed_bucket, "model.joblib") == 403
    assert read_posture(weed.client, weed_bucket).policy.state == "on"

    weed.client.put_bucket_policy(Bucket=weed_bucket, Policy=public_read(weed_bucket))
    posture = read_posture(weed.client, weed_bucket)
    assert posture.policy.state == "off"
    assert "statement PublicRead allows s3:GetObject to everyone" in posture.policy.detail
    assert unsigned_get(weed.endpoint, weed_bucket, "model.joblib") == 200  # the flag matches what SeaweedFS does
    checks = judge_posture([posture], unknown="warn", require={"policy"})
    failed = [c for c in checks if c.status == Status.FAIL]
    assert [c.id for c in failed] == [f"storage:{weed_bucket}:policy"]
    assert "anonymous read" in failed[0].message and weed_bucket in failed[0].message

    # Restricted to a network this test is not in: not flagged, and SeaweedFS refuses the unsigned GET.
    weed.client.put_bucket_policy(Bucket=weed_bucket, Policy=public_read(
        weed_bucket, IpAddress={"aws:SourceIp": "10.0.0.0/8"}))
    assert read_posture(weed.client, weed_bucket).policy.state == "on"
    assert unsigned_get(weed.endpoint, weed_bucket, "model.joblib") == 403


def test_seaweedfs_public_read_acl_is_an_anonymous_read(weed: ObjectStore, weed_bucket: str) -> None:
    weed.client.put_object(Bucket=weed_bucket, Key="model.joblib", Body=b"weights")
    weed.client.put_bucket_acl(Bucket=weed_bucket, ACL="public-read")
    posture = read_posture(weed.client, weed_bucket)
    assert posture.policy.state == "off" and "ACL grants AllUsers: READ" in posture.policy.detail
    assert unsigned_get(weed.endpoint, weed_bucket, "model.joblib") == 200

    weed.client.put_bucket_acl(Bucket=weed_bucket, ACL="private")
    assert read_posture(weed.client, weed_bucket).policy.state == "on"


def test_seaweedfs_wrong_credentials_are_access_denied(s3_service, weed_bucket: str) -> None:
    denied = ObjectStore.from_settings(Settings(s3_secret_access_key="not-the-secret", s3_retry_seconds=0))
    posture = read_posture(denied.client, weed_bucket)
    assert states(posture) == dict.fromkeys(ASPECTS, "unknown")
    for _aspect, reading in posture.readings():
        assert reading.reason is UnknownReason.ACCESS_DENIED
        assert "SignatureDoesNotMatch (HTTP 403)" in (reading.error or "")
    assert set(statuses(posture, unknown="fail").values()) == {Status.FAIL}


def test_seaweedfs_missing_bucket_is_unknown_not_off(weed: ObjectStore) -> None:
    missing = f"posture-missing-{uuid.uuid4().hex[:8]}"
    # SeaweedFS answers GetBucketEncryption on a bucket that does not exist as if it merely had no
    # encryption: the reading asks HeadBucket first so that never reads as "off".
    with pytest.raises(ClientError) as answer:
        weed.client.get_bucket_encryption(Bucket=missing)
    assert answer.value.response["Error"]["Code"] == "ServerSideEncryptionConfigurationNotFoundError"
    posture = read_posture(weed.client, missing)
    assert states(posture) == dict.fromkeys(ASPECTS, "unknown")
    assert {r.reason for _a, r in posture.readings()} == {UnknownReason.NO_SUCH_BUCKET}


def test_an_endpoint_that_does_not_answer_is_unavailable_after_the_retry_window(s3_service) -> None:
    (port,) = free_ports(1)  # nothing listens there
    gone = ObjectStore.from_settings(Settings(s3_endpoint_url=f"http://127.0.0.1:{port}", s3_retry_seconds=0.6))
    posture = read_posture(gone.client, "clearance", retry_seconds=gone.retry_seconds)
    assert states(posture) == dict.fromkeys(ASPECTS, "unknown")
    for _aspect, reading in posture.readings():
        assert reading.reason is UnknownReason.UNAVAILABLE
        assert f"127.0.0.1:{port} is unavailable" in (reading.error or "")
        assert "gave up after" in (reading.error or "")
    assert set(statuses(posture, unknown="warn").values()) == {Status.WARN}


@pytest.fixture
def proxied(s3_service) -> Iterator[FaultProxy]:
    """The session's SeaweedFS behind the fault proxy (real 503s, real outages)."""
    proxy = FaultProxy(s3_service.endpoint_url, s3_service.access_key_id, s3_service.secret_access_key,
                       s3_service.region).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_a_short_outage_is_ridden_out_with_the_stores_retries(proxied: FaultProxy, weed: ObjectStore,
                                                               weed_bucket: str) -> None:
    weed.client.put_bucket_versioning(Bucket=weed_bucket, VersioningConfiguration={"Status": "Enabled"})
    through = ObjectStore.from_settings(Settings(s3_endpoint_url=proxied.url, s3_retry_seconds=15))
    proxied.outage(1.0)  # SeaweedFS restarting: 503 to everything for a second
    posture = read_posture(through.client, weed_bucket, retry_seconds=through.retry_seconds)
    assert states(posture) == {"encryption": "off", "versioning": "on", "public_access_block": "unknown",
                               "policy": "on"}
    assert posture.public_access_block.reason is UnknownReason.NOT_IMPLEMENTED
    assert any(seen.answered == "503" for seen in proxied.seen)


def test_an_outage_midway_leaves_the_rest_unknown_without_asking_again(proxied: FaultProxy,
                                                                       weed_bucket: str) -> None:
    through = ObjectStore.from_settings(Settings(s3_endpoint_url=proxied.url, s3_retry_seconds=0.6))
    # HeadBucket (HEAD) and GetBucketEncryption (the first GET) are answered, then the store goes away.
    proxied.fail_after(lambda method, _path: method == "GET", seconds=60)
    posture = read_posture(through.client, weed_bucket, retry_seconds=through.retry_seconds)
    assert posture.encryption.state == "off"  # read before the outage
    for aspect in ("versioning", "public_access_block", "policy"):
        reading = getattr(posture, aspect)
        assert reading.state == "unknown" and reading.reason is UnknownReason.UNAVAILABLE, aspect
    assert "gave up after" in (posture.versioning.error or "")
    assert "not asked" in (posture.public_access_block.error or "")
    assert "not asked" in (posture.policy.error or "")
    failed = [seen for seen in proxied.seen if seen.answered == "503"]
    assert failed and len({(s.method, s.path) for s in failed}) == 1  # only the versioning call was retried
    proxied.heal()


def test_the_promotion_reads_the_clearance_bucket_and_the_witness_bucket(s3_service, weed: ObjectStore,
                                                                         weed_bucket: str, monkeypatch) -> None:
    postures = read_promotion_postures(Settings())
    assert [(p.bucket, p.role) for p in postures] == [(s3_service.bucket, "clearance")]
    assert postures[0].public_access_block.reason is UnknownReason.NOT_IMPLEMENTED

    weed.client.put_bucket_versioning(Bucket=weed_bucket, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("CLEARANCE_WITNESS_BUCKET", weed_bucket)
    monkeypatch.setenv("CLEARANCE_WITNESS_S3_ACCESS_KEY_ID", s3_service.access_key_id)
    monkeypatch.setenv("CLEARANCE_WITNESS_S3_SECRET_ACCESS_KEY", s3_service.secret_access_key)
    postures = read_promotion_postures(Settings())
    assert [(p.bucket, p.role) for p in postures] == [(s3_service.bucket, "clearance"), (weed_bucket, "witness")]
    assert postures[1].versioning.state == "on"
    ids = [c.id for c in judge_posture(postures, unknown="warn", require=set())]
    assert f"storage:{weed_bucket}:versioning" in ids and f"storage:{s3_service.bucket}:encryption" in ids


def test_the_prefect_task_reads_fresh_postures_in_a_flow(s3_service, prefect_service) -> None:
    from prefect import flow

    @flow(name="storage-posture-test")
    def scan() -> list[BucketPosture]:
        return read_storage_postures()

    get_settings.cache_clear()
    postures = scan()
    assert [p.bucket for p in postures] == [s3_service.bucket]
    assert postures[0].public_access_block.state == "unknown"


# --------------------------------------------------------------------------- moto's S3 server


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_endpoint: str) -> Iterator[tuple[ObjectStore, str]]:
    """A fresh bucket on moto's server, through the product's client construction."""
    store = ObjectStore.from_settings(Settings(s3_endpoint_url=moto_endpoint, s3_access_key_id="testing",
                                               s3_secret_access_key="testing", s3_retry_seconds=2))
    bucket = f"posture-{uuid.uuid4().hex[:10]}"
    store.client.create_bucket(Bucket=bucket)
    yield store, bucket
    _empty_and_delete(store.client, bucket)


def test_moto_fresh_bucket_reads_off_with_nothing_unknown(moto) -> None:
    store, bucket = moto
    posture = read_posture(store.client, bucket)
    assert states(posture) == {"encryption": "off", "versioning": "off", "public_access_block": "off",
                               "policy": "on"}
    assert posture.public_access_block.detail == "no public access block configured"


def test_moto_encryption_on_and_off(moto) -> None:
    store, bucket = moto
    store.client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/models"}}]})
    posture = read_posture(store.client, bucket)
    assert posture.encryption.state == "on" and posture.encryption.detail == "aws:kms (key alias/models)"
    store.client.delete_bucket_encryption(Bucket=bucket)
    posture = read_posture(store.client, bucket)
    assert posture.encryption.state == "off"
    assert statuses(posture, require={"encryption"})["encryption"] == Status.FAIL


def test_moto_public_access_block_all_four_or_off_naming_the_false_ones(moto) -> None:
    store, bucket = moto
    store.client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=ALL_BLOCKED)
    posture = read_posture(store.client, bucket)
    assert posture.public_access_block.state == "on"
    assert statuses(posture)["public_access_block"] == Status.PASS

    store.client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        **ALL_BLOCKED, "IgnorePublicAcls": False, "RestrictPublicBuckets": False})
    posture = read_posture(store.client, bucket)
    assert posture.public_access_block.state == "off"
    assert posture.public_access_block.detail == "false: IgnorePublicAcls, RestrictPublicBuckets"
    assert statuses(posture, require={"public_access_block"})["public_access_block"] == Status.FAIL
    assert statuses(posture, require=set())["public_access_block"] == Status.WARN

    store.client.delete_public_access_block(Bucket=bucket)
    assert read_posture(store.client, bucket).public_access_block.state == "off"


def test_moto_policy_for_everyone_fails_and_one_restricted_by_condition_does_not(moto) -> None:
    store, bucket = moto
    store.client.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    posture = read_posture(store.client, bucket)
    assert posture.policy.state == "off" and "anonymous read" in posture.policy.detail
    assert statuses(posture, require={"policy"})["policy"] == Status.FAIL

    store.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:Get*"], "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}}]}))
    posture = read_posture(store.client, bucket)
    assert posture.policy.state == "on"
    assert statuses(posture, require={"policy"})["policy"] == Status.PASS


def test_moto_authenticated_read_acl_counts_as_anonymous_read(moto) -> None:
    store, bucket = moto
    store.client.put_bucket_acl(Bucket=bucket, ACL="authenticated-read")
    posture = read_posture(store.client, bucket)
    assert posture.policy.state == "off" and "AuthenticatedUsers: READ" in posture.policy.detail


def test_moto_everything_on_passes_every_check(moto) -> None:
    store, bucket = moto
    store.client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    store.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store.client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=ALL_BLOCKED)
    posture = read_posture(store.client, bucket, retry_seconds=store.retry_seconds)
    assert states(posture) == dict.fromkeys(ASPECTS, "on")
    assert set(statuses(posture, unknown="fail").values()) == {Status.PASS}


def test_moto_missing_bucket_is_unknown(moto) -> None:
    store, _bucket = moto
    posture = read_posture(store.client, f"posture-missing-{uuid.uuid4().hex[:8]}")
    assert {r.reason for _a, r in posture.readings()} == {UnknownReason.NO_SUCH_BUCKET}

"""Ledger appends on the real store: concurrent writers, failure records."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.signing import own_public_keys

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(s3_service):
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    get_settings.cache_clear()
    return ObjectStore.from_settings(get_settings())


def test_concurrent_appends_keep_one_chain(s3):
    from clearance.core.ledger_kinds import LedgerKind
    from tasks.ledger import append_entry, verify_ledger

    model = f"m-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda i: append_entry(s3, model, LedgerKind.GATE, {"i": i}), range(24)))
    count, problems = verify_ledger(s3, model, trusted_keys=own_public_keys())
    assert count == 24 and problems == []


def test_tampering_in_the_store_is_detected(s3):
    from clearance.core.ledger_kinds import LedgerKind
    from tasks.ledger import append_entry, verify_ledger

    model = f"m-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        append_entry(s3, model, LedgerKind.GATE, {"i": i})
    key = f"evidence/{model}/ledger/{2:012d}.json"
    body = s3.get_bytes(key)[0].replace(b'"i":1', b'"i":7')
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    _, problems = verify_ledger(s3, model, trusted_keys=own_public_keys())
    assert [p.seq for p in problems] == [2]


def test_unexpected_failure_is_recorded_once(s3):
    from tasks.evidence import record_unexpected_failure
    from tasks.ledger import append_entry, read_ledger

    model = f"m-{uuid.uuid4().hex[:8]}"
    assert not record_unexpected_failure(model, "1", "run-a", "boom")  # never started: nothing to close
    append_entry(s3, model, "started", {"run": "run-a"})
    assert record_unexpected_failure(model, "1", "run-a", "boom")
    assert not record_unexpected_failure(model, "1", "run-a", "boom again")
    assert [(e.kind, e.payload.get("reason")) for e in read_ledger(s3, model)] == [("started", None),
                                                                                  ("failed", "boom")]

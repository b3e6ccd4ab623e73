"""Checks ``storage`` and ``storage:<bucket>:<aspect>``: the posture of the buckets the promotion uses.

Input: ``extra["storage_posture"]``, a list of :class:`~gates.security_scan.posture.BucketPosture`
(as JSON), read by ``tasks/storage_posture.py``. Judged by :func:`~gates.security_scan.posture.judge_posture`
with the tier's ``storage.unknown`` and ``storage.require``. Not given (a pre-flight reads no bucket):
one ``storage`` check, skipped, saying so.
"""

from __future__ import annotations

from pydantic import ValidationError

from gates.base import CheckResult, Status
from gates.security_scan.context import Scan
from gates.security_scan.posture import BucketPosture, judge_posture

CHECKS = {
    "storage": "The storage posture of the promotion's buckets was read",
    "storage:<bucket>:<aspect>": "A bucket has default encryption, versioning, a public access block and no "
                                 "anonymous read",
}


def run(scan: Scan) -> list[CheckResult]:
    raw = scan.extra.get("storage_posture")
    if raw is None:
        why = "a pre-flight reads no bucket" if scan.preflight else "the flow gave no storage posture"
        return [CheckResult(id="storage", status=Status.SKIPPED, message=f"storage posture not judged: {why}")]
    try:
        postures = [p if isinstance(p, BucketPosture) else BucketPosture.model_validate(p) for p in raw]
    except ValidationError as exc:
        return [CheckResult(id="storage", status=Status.ERROR,
                            message=f"the storage posture given is not readable: {exc.errors()[0]['msg']}")]
    scan.table["storage"] = [p.model_dump(mode="json") for p in postures]
    config = scan.config.storage
    checks = judge_posture(postures, unknown=config.unknown.value, require=set(config.require))
    scan.count("storage.buckets", len(postures))
    scan.count("storage.unknown", sum(1 for p in postures for _, r in p.readings() if r.state == "unknown"))
    return checks

"""The storage-posture judgement of the security_scan gate, on plain readings and plain policy documents.

Every state × required × tier combination; ``unknown`` never passes; ``off`` fails exactly when the aspect
is required. The reading itself (tasks/storage_posture.py) is tested against real servers in
tests/integration/test_storage_posture.py.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from pydantic import ValidationError

from gates.base import Status
from gates.security_scan.posture import (
    ASPECTS,
    AspectReading,
    BucketPosture,
    UnknownReason,
    anonymous_read_statements,
    judge_posture,
    public_acl_grants,
    restricting_condition,
)

ON = AspectReading(state="on", detail="fine")
OFF = AspectReading(state="off", detail="not configured")


def unknown(reason: UnknownReason = UnknownReason.NOT_IMPLEMENTED, error: str = "NotImplemented (HTTP 501)"
            ) -> AspectReading:
    return AspectReading(state="unknown", reason=reason, error=error, calls=("GetPublicAccessBlock",))


READINGS = {"on": ON, "off": OFF, "unknown": unknown()}


def posture(bucket: str = "clearance", role: str = "clearance", **readings: AspectReading) -> BucketPosture:
    return BucketPosture(bucket=bucket, role=role, endpoint="http://127.0.0.1:1",
                         **{aspect: readings.get(aspect, ON) for aspect in ASPECTS})


def expected(state: str, required: bool, tier_unknown: str) -> Status:
    return {"on": Status.PASS, "off": Status.FAIL if required else Status.WARN,
            "unknown": Status(tier_unknown)}[state]


# --------------------------------------------------------------------------- every combination


@pytest.mark.parametrize(("aspect", "state", "required", "tier_unknown"),
                         list(itertools.product(ASPECTS, ["on", "off", "unknown"], [True, False], ["warn", "fail"])))
def test_each_aspect_state_requirement_and_tier(aspect: str, state: str, required: bool, tier_unknown: Any) -> None:
    checks = judge_posture([posture(**{aspect: READINGS[state]})], unknown=tier_unknown,
                           require={aspect} if required else set())
    assert [c.id for c in checks] == [f"storage:clearance:{a}" for a in ASPECTS]
    by_id = {c.id: c for c in checks}
    check = by_id[f"storage:clearance:{aspect}"]
    assert check.status == expected(state, required, tier_unknown)
    assert check.observed["state"] == state and check.observed["aspect"] == aspect
    assert check.threshold == {"state": "on", "required": required, "unknown": tier_unknown}
    assert "clearance" in check.message
    others = [c for c in checks if c is not check]
    assert all(c.status == Status.PASS for c in others)  # the other aspects are on


def test_all_four_aspects_in_every_state_at_once() -> None:
    """Every assignment of states to the four aspects, with every requirement set, under both tiers."""
    requirement_sets = [set(s) for n in range(len(ASPECTS) + 1) for s in itertools.combinations(ASPECTS, n)]
    for states in itertools.product(["on", "off", "unknown"], repeat=len(ASPECTS)):
        for require in requirement_sets:
            for tier_unknown in ("warn", "fail"):
                readings = {a: READINGS[s] for a, s in zip(ASPECTS, states, strict=True)}
                checks = judge_posture([posture(**readings)], unknown=tier_unknown, require=require)  # type: ignore[arg-type]
                for aspect, state, check in zip(ASPECTS, states, checks, strict=True):
                    assert check.id == f"storage:clearance:{aspect}"
                    assert check.status == expected(state, aspect in require, tier_unknown)
                    if state == "unknown":
                        assert check.status != Status.PASS
                    if state == "off" and aspect in require:
                        assert check.status == Status.FAIL


@pytest.mark.parametrize("reason", list(UnknownReason))
@pytest.mark.parametrize("tier_unknown", ["warn", "fail"])
def test_unknown_is_never_a_pass_whatever_the_reason(reason: UnknownReason, tier_unknown: Any) -> None:
    reading = unknown(reason, error="SomeCode (HTTP 418)")
    checks = judge_posture([posture(**dict.fromkeys(ASPECTS, reading))], unknown=tier_unknown, require=set())
    assert {c.status for c in checks} == {Status(tier_unknown)}
    for check in checks:
        assert check.observed["reason"] == reason.value
        assert "unknown" in check.message and "SomeCode (HTTP 418)" in check.message
        assert f"treats unknown as {tier_unknown}" in check.message


def test_messages_name_bucket_aspect_and_reason() -> None:
    checks = judge_posture([posture("models-prod", public_access_block=unknown(), encryption=OFF)], unknown="warn",
                           require={"encryption"})
    by_id = {c.id: c for c in checks}
    pab = by_id["storage:models-prod:public_access_block"]
    assert pab.status == Status.WARN
    assert "bucket models-prod" in pab.message and "public access block" in pab.message
    assert "not implemented by the server" in pab.message and "NotImplemented (HTTP 501)" in pab.message
    assert pab.observed["calls"] == ["GetPublicAccessBlock"]
    enc = by_id["storage:models-prod:encryption"]
    assert enc.status == Status.FAIL
    assert "default encryption: off" in enc.message and "required by the tier" in enc.message
    assert "not configured" in enc.message  # the reading's detail


def test_one_check_per_bucket_and_aspect_for_several_buckets() -> None:
    checks = judge_posture([posture("clearance"), posture("ledger-witness", role="witness", versioning=OFF)],
                           unknown="fail", require={"versioning"})
    assert [c.id for c in checks] == ([f"storage:clearance:{a}" for a in ASPECTS]
                                      + [f"storage:ledger-witness:{a}" for a in ASPECTS])
    failed = [c for c in checks if c.status == Status.FAIL]
    assert [c.id for c in failed] == ["storage:ledger-witness:versioning"]
    assert "(witness)" in failed[0].message


def test_one_bucket_name_on_two_endpoints_keeps_ids_apart() -> None:
    checks = judge_posture([posture("shared"), posture("shared", role="witness")], unknown="warn", require=set())
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)) == 2 * len(ASPECTS)
    assert "storage:shared@clearance:encryption" in ids and "storage:shared@witness:encryption" in ids


def test_no_posture_at_all_is_an_error_not_a_pass() -> None:
    checks = judge_posture([], unknown="warn", require=set())
    assert [(c.id, c.status) for c in checks] == [("storage", Status.ERROR)]


def test_a_misspelt_requirement_or_tier_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="encrypton"):
        judge_posture([posture()], unknown="warn", require={"encrypton"})
    with pytest.raises(ValueError, match="warn' or 'fail"):
        judge_posture([posture()], unknown="pass", require=set())  # type: ignore[arg-type]


def test_a_reading_has_a_reason_exactly_when_it_is_unknown() -> None:
    with pytest.raises(ValidationError):
        AspectReading(state="unknown")
    with pytest.raises(ValidationError):
        AspectReading(state="on", reason=UnknownReason.ACCESS_DENIED)
    with pytest.raises(ValidationError):
        AspectReading(state="maybe")  # type: ignore[arg-type]


def test_a_posture_survives_json_as_gate_inputs_carry_it() -> None:
    original = posture(public_access_block=unknown(UnknownReason.UNAVAILABLE, "gave up after 3 attempts"),
                       policy=OFF)
    again = BucketPosture.model_validate(json.loads(original.model_dump_json()))
    assert again == original
    assert [c.model_dump() for c in judge_posture([again], unknown="fail", require={"policy"})] == \
        [c.model_dump() for c in judge_posture([original], unknown="fail", require={"policy"})]


# --------------------------------------------------------------------------- bucket policies


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any = "*", action: Any = "s3:GetObject", resource: Any = "arn:aws:s3:::models/*",
          **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource, **more}


@pytest.mark.parametrize("statement", [
    allow(),
    allow(principal={"AWS": "*"}),
    allow(principal={"AWS": ["arn:aws:iam::123456789012:root", "*"]}),
    allow(principal={"AWS": "arn:aws:iam::*:root"}),
    allow(action="s3:*"),
    allow(action="s3:Get*"),
    allow(action="*"),
    allow(action=["s3:ListBucket", "s3:GetObject"]),
    allow(action="S3:getobject"),
    allow(action="s3:GetObjectVersion"),
    allow(resource="arn:aws:s3:::models/public/*"),
    allow(resource=["arn:aws:s3:::other/*", "arn:aws:s3:::models/*"]),
    allow(resource="arn:aws:s3:::*"),
    allow(resource="arn:aws:s3:::mod*/*"),
    allow(resource="*"),
    {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::models/*"},
    {"Effect": "Allow", "Principal": "*", "NotAction": "s3:PutObject", "Resource": "arn:aws:s3:::models/*"},
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::models/private/*"},
    allow(Condition={"Bool": {"aws:SecureTransport": "true"}}),
    allow(Condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
    allow(Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
    allow(Condition={"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc123"}}),
    allow(Condition={"StringLike": {"aws:PrincipalOrgID": "o-*"}}),
    allow(Condition={"StringLike": {"aws:Referer": "https://example.com/*"}}),
    allow(Condition={"ForAllValues:StringEquals": {"aws:SourceVpce": ["vpce-1"]}}),
])
def test_policies_that_let_anyone_read_objects_are_found(statement: dict[str, Any]) -> None:
    found = anonymous_read_statements(policy(statement), "models")
    assert len(found) == 1 and "to everyone" in found[0]


@pytest.mark.parametrize("statement", [
    allow(principal={"AWS": "arn:aws:iam::123456789012:root"}),
    allow(principal={"Service": "cloudfront.amazonaws.com"}),
    {**allow(), "Effect": "Deny"},
    allow(action="s3:PutObject"),
    allow(action=["s3:ListBucket", "s3:GetBucketPolicy"]),
    allow(resource="arn:aws:s3:::models"),  # the bucket itself: no object
    allow(resource="arn:aws:s3:::other/*"),
    allow(resource="arn:aws:s3:::models-backup/*"),
    {"Effect": "Allow", "Principal": "*", "NotAction": ["s3:Get*"], "Resource": "arn:aws:s3:::models/*"},
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::models/*"},
    allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
    allow(Condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.1.0/24"]}}),
    allow(Condition={"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}),
    allow(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}),
    allow(Condition={"ForAnyValue:StringEquals": {"aws:PrincipalAccount": ["123456789012"]}}),
    allow(Condition={"ArnEquals": {"aws:SourceArn": "arn:aws:cloudfront::123456789012:distribution/E1"}}),
])
def test_policies_that_do_not_let_anyone_read_are_not_flagged(statement: dict[str, Any]) -> None:
    assert anonymous_read_statements(policy(statement), "models") == []


def test_statement_as_one_object_and_names_in_findings() -> None:
    document = {"Version": "2012-10-17", "Statement": {**allow(), "Sid": "PublicRead"}}
    assert anonymous_read_statements(document, "models") == ["statement PublicRead allows s3:GetObject to everyone"]
    assert anonymous_read_statements(policy(allow(principal="arn:aws:iam::1:root"), allow()), "models") == \
        ["statement #1 allows s3:GetObject to everyone"]
    assert anonymous_read_statements({"Version": "2012-10-17"}, "models") == []


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", json.dumps({"Statement": ["x"]})])
def test_a_policy_that_cannot_be_read_is_an_error_not_a_clean_bill(bad: str) -> None:
    with pytest.raises(ValueError):
        anonymous_read_statements(bad, "models")


def test_restricting_conditions() -> None:
    assert restricting_condition({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})
    assert restricting_condition({"StringEquals": {"AWS:SOURCEVPC": "vpc-1"}})  # keys compare case-insensitively
    assert not restricting_condition({"IpAddress": {"aws:SourceIp": "::/0"}})
    assert not restricting_condition({"IpAddress": {"aws:SourceIp": "not-a-cidr"}})
    assert not restricting_condition({"StringEquals": {"aws:SourceVpc": "${aws:SourceVpc}"}})
    assert not restricting_condition({"StringEquals": {"aws:SourceVpc": []}})
    assert not restricting_condition({"Null": {"aws:SourceVpc": "false"}})
    assert not restricting_condition(None)
    assert not restricting_condition("IpAddress")


# --------------------------------------------------------------------------- bucket ACLs


def test_public_acl_grants() -> None:
    owner = {"Grantee": {"Type": "CanonicalUser", "ID": "abc"}, "Permission": "FULL_CONTROL"}
    everyone = {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                "Permission": "READ"}
    any_account = {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"},
                   "Permission": "WRITE"}
    log_delivery = {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/s3/LogDelivery"},
                    "Permission": "WRITE"}
    assert public_acl_grants([owner, log_delivery]) == []
    assert public_acl_grants([owner, everyone, any_account]) == ["AllUsers: READ", "AuthenticatedUsers: WRITE"]
    assert public_acl_grants([{"Grantee": {"URI": "https://acs.amazonaws.com/groups/global/AllUsers/"},
                               "Permission": "READ"}]) == ["AllUsers: READ"]

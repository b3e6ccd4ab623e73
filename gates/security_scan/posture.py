"""Storage posture of the buckets a promotion uses, judged: one check per bucket and aspect.

``tasks/storage_posture.py`` reads each bucket (the clearance bucket, the witness bucket when one is
configured) into a :class:`BucketPosture`; :func:`judge_posture` turns the readings into checks with
the tier's rules. Four aspects, each ``on``, ``off`` or ``unknown``:

``encryption``           a default server-side encryption configuration (GetBucketEncryption)
``versioning``           versioning ``Enabled`` (GetBucketVersioning; ``Suspended`` or never enabled is off)
``public_access_block``  all four Block Public Access flags set (GetPublicAccessBlock)
``policy``               no anonymous read: neither the bucket policy (GetBucketPolicy) nor the bucket ACL
                         (GetBucketAcl) grants reads to everyone (off: anonymous read is possible)

A server that does not implement a call, refuses it, answers something unexpected or does not answer
at all leaves that aspect ``unknown`` — never ``pass``: the tier says whether ``unknown`` warns or
fails. ``off`` fails for the aspects the tier requires and warns for the others.

The policy analysis (:func:`anonymous_read_statements`, :func:`public_acl_grants`) lives here, pure,
so it is tested on plain documents; the task only fetches them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from enum import Enum
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gates.base import CheckResult, Status

Aspect = Literal["encryption", "versioning", "public_access_block", "policy"]
#: The aspects in the order checks are listed.
ASPECTS: tuple[Aspect, ...] = get_args(Aspect)
State = Literal["on", "off", "unknown"]

#: How each aspect reads in messages.
ASPECT_LABELS: dict[str, str] = {
    "encryption": "default encryption",
    "versioning": "versioning",
    "public_access_block": "public access block",
    "policy": "no anonymous read (bucket policy and ACL)",
}


class UnknownReason(str, Enum):
    """Why an aspect could not be read."""

    NOT_IMPLEMENTED = "not-implemented"  # 501 NotImplemented, 405 MethodNotAllowed, XNotImplemented, …
    ACCESS_DENIED = "access-denied"  # 403: AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId
    NO_SUCH_BUCKET = "no-such-bucket"  # the bucket does not exist (or is not visible to these credentials)
    UNAVAILABLE = "unavailable"  # no answer for the store's whole retry window
    UNEXPECTED = "unexpected-error"  # any other error code, or an answer that cannot be parsed


REASON_TEXT: dict[UnknownReason, str] = {
    UnknownReason.NOT_IMPLEMENTED: "not implemented by the server",
    UnknownReason.ACCESS_DENIED: "access denied",
    UnknownReason.NO_SUCH_BUCKET: "the bucket does not exist",
    UnknownReason.UNAVAILABLE: "the object store did not answer",
    UnknownReason.UNEXPECTED: "unexpected answer",
}


class AspectReading(BaseModel):
    """One aspect of one bucket as read: its state, what was seen, and for ``unknown`` why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: State
    detail: str = Field("", description="What was seen (for people), e.g. 'SSE-S3 (AES256)' or 'Suspended'.")
    reason: UnknownReason | None = Field(None, description="Why the state is unknown; only for unknown.")
    error: str | None = Field(None, description="The server's error code and HTTP status, e.g. "
                                                "'NotImplemented (HTTP 501)', when a call failed.")
    calls: tuple[str, ...] = Field((), description="The S3 calls this reading rests on, e.g. GetBucketPolicy.")

    @model_validator(mode="after")
    def _reason_iff_unknown(self) -> AspectReading:
        if (self.state == "unknown") != (self.reason is not None):
            raise ValueError("a reason is given exactly when the state is unknown")
        return self


class BucketPosture(BaseModel):
    """The storage posture of one bucket: one reading per aspect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    role: str = Field("clearance", description="What the promotion uses the bucket for: clearance, witness.")
    endpoint: str | None = Field(None, description="The S3 endpoint it was read from (never credentials).")
    encryption: AspectReading
    versioning: AspectReading
    public_access_block: AspectReading
    policy: AspectReading

    def readings(self) -> list[tuple[Aspect, AspectReading]]:
        """``(aspect, reading)`` for every aspect, in :data:`ASPECTS` order."""
        return [(aspect, getattr(self, aspect)) for aspect in ASPECTS]


# --------------------------------------------------------------------------- judging


def judge_posture(postures: list[BucketPosture], *, unknown: Literal["warn", "fail"],
                  require: set[str]) -> list[CheckResult]:
    """One check per bucket and aspect, ``storage:<bucket>:<aspect>``.

    ``on`` passes; ``off`` fails when the aspect is in ``require`` and warns otherwise; ``unknown``
    gets the tier's ``unknown`` status (never pass). A bucket name read twice (say the witness bucket
    has the clearance bucket's name on another endpoint) is told apart as ``<bucket>@<role>``. No
    posture at all is one ``error`` check (``storage``): the reading did not happen, nothing passed.
    """
    if unknown not in ("warn", "fail"):
        raise ValueError(f"unknown must be 'warn' or 'fail', not {unknown!r}")
    strange = set(require) - set(ASPECTS)
    if strange:  # a misspelt requirement would silently only warn
        raise ValueError(f"unknown aspects in require: {', '.join(sorted(strange))}; known: {', '.join(ASPECTS)}")
    if not postures:
        return [CheckResult(id="storage", status=Status.ERROR, observed=[], threshold=sorted(require),
                            message="no bucket posture was read: the storage posture is unknown")]
    names = [p.bucket for p in postures]
    checks: list[CheckResult] = []
    for posture in postures:
        name = posture.bucket if names.count(posture.bucket) == 1 else f"{posture.bucket}@{posture.role}"
        for aspect, reading in posture.readings():
            checks.append(_check(name, posture, aspect, reading, required=aspect in require, unknown=unknown))
    return checks


def _check(name: str, posture: BucketPosture, aspect: Aspect, reading: AspectReading, *, required: bool,
           unknown: Literal["warn", "fail"]) -> CheckResult:
    label = ASPECT_LABELS[aspect]
    where = f"bucket {posture.bucket} ({posture.role})"
    demand = "required by the tier" if required else "recommended"
    if reading.state == "on":
        status, verdict = Status.PASS, f"{label}: on"
    elif reading.state == "off":
        status = Status.FAIL if required else Status.WARN
        verdict = f"{label}: off — {demand}"
    else:
        status = Status(unknown)
        why = REASON_TEXT[reading.reason] if reading.reason else "unknown"
        verdict = (f"{label}: unknown — {why}{f' ({reading.error})' if reading.error else ''}; "
                   f"the tier treats unknown as {unknown}")
    detail = f" ({reading.detail})" if reading.detail else ""
    return CheckResult(
        id=f"storage:{name}:{aspect}", status=status,
        observed={"bucket": posture.bucket, "role": posture.role, "aspect": aspect, "state": reading.state,
                  "detail": reading.detail, "reason": reading.reason.value if reading.reason else None,
                  "error": reading.error, "calls": list(reading.calls)},
        threshold={"state": "on", "required": required, "unknown": unknown},
        message=f"{where}: {verdict}{detail}",
    )


# --------------------------------------------------------------------------- anonymous reads: bucket policy

#: Object reads a statement must allow to count as an anonymous read.
READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
#: Condition keys that pin who may call (AWS's "meaning of public": a fixed value of one of these makes a
#: statement non-public) — compared lower-case, as IAM compares condition keys.
RESTRICTING_KEYS = frozenset(k.lower() for k in (
    "aws:SourceIp", "aws:SourceArn", "aws:SourceVpc", "aws:SourceVpce", "aws:SourceOwner", "aws:SourceAccount",
    "aws:PrincipalOrgID", "aws:PrincipalAccount", "aws:PrincipalArn", "aws:userid",
    "s3:x-amz-server-side-encryption-aws-kms-key-id"))
#: Operators that restrict to the listed values (negations, ``…IfExists``, ``ForAllValues:``, ``Null`` and
#: ``Bool`` do not: a request without the key, such as an anonymous one, still matches them).
RESTRICTING_OPERATORS = frozenset(("stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike",
                                   "ipaddress"))


def _glob(pattern: str, text: str) -> bool:
    """IAM wildcard match (``*`` any run, ``?`` one character), case-insensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.IGNORECASE | re.DOTALL) is not None


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _everyone(principal: Any) -> bool:
    """``"*"``, ``{"AWS": "*"}`` or any principal with a wildcard (``arn:aws:iam::*:root``): not a fixed one."""
    if isinstance(principal, str):
        return "*" in principal
    if isinstance(principal, dict):
        return any(isinstance(v, str) and "*" in v for values in principal.values() for v in _listed(values))
    return False


def _reads(statement: dict[str, Any]) -> bool:
    """Whether the statement's actions include reading objects."""
    if "NotAction" in statement:  # everything except these
        excluded = [a for a in _listed(statement["NotAction"]) if isinstance(a, str)]
        return any(not any(_glob(a, action) for a in excluded) for action in READ_ACTIONS)
    actions = [a for a in _listed(statement.get("Action")) if isinstance(a, str)]
    return any(_glob(a, action) for a in actions for action in READ_ACTIONS)


def _covers_objects(resource: str, bucket: str) -> bool:
    """Whether a Resource pattern names some object of ``bucket`` (``arn:aws:s3:::bucket/*``, ``…/public/*``,
    ``arn:aws:s3:::*``, ``*``); the bucket's own ARN alone names no object."""
    head, sep, rest = resource.partition(":::")
    if not sep:
        return _glob(resource, f"arn:aws:s3:::{bucket}/key")
    if not (_glob(head, "arn:aws:s3") or re.fullmatch(r"arn:[^:]*:s3", head, flags=re.IGNORECASE)):
        return False
    bucket_part, slash, _objects = rest.partition("/")
    if slash:
        return _glob(bucket_part, bucket)
    return _glob(rest, f"{bucket}/key")  # a wildcard in the bucket part spans the slash


def _resources_cover(statement: dict[str, Any], bucket: str) -> bool:
    if "NotResource" in statement:  # everything except these: read unless they exclude all of the bucket's objects
        excluded = [r for r in _listed(statement["NotResource"]) if isinstance(r, str)]
        return not any(_glob(r, f"arn:aws:s3:::{bucket}/*") or r == "*" for r in excluded)
    return any(isinstance(r, str) and _covers_objects(r, bucket) for r in _listed(statement.get("Resource")))


def _fixed(key: str, value: Any) -> bool:
    """A value that names one thing: no wildcard, no policy variable, no catch-all CIDR."""
    if not isinstance(value, str) or not value or "*" in value or "?" in value or "${" in value:
        return False
    if key == "aws:sourceip":
        try:
            return ipaddress.ip_network(value, strict=False).prefixlen > 0
        except ValueError:
            return False
    return True


def restricting_condition(condition: Any) -> bool:
    """Whether a statement's Condition limits who can use it to fixed callers (source IPs, VPCs, accounts,
    principals, …); ``aws:SecureTransport``, ``aws:Referer`` and the like restrict nobody."""
    if not isinstance(condition, dict):
        return False
    for operator, block in condition.items():
        op = str(operator).lower().removeprefix("foranyvalue:")
        if op not in RESTRICTING_OPERATORS or not isinstance(block, dict):
            continue
        for key, values in block.items():
            k = str(key).lower()
            listed = _listed(values)
            if k in RESTRICTING_KEYS and listed and all(_fixed(k, v) for v in listed):
                return True
    return False


def anonymous_read_statements(policy: dict[str, Any] | str, bucket: str) -> list[str]:
    """The statements of a bucket policy that let anyone read objects of ``bucket``, described.

    An ``Allow`` whose principal is everyone (``"*"``, ``{"AWS": "*"}``, a wildcard ARN; or any
    ``NotPrincipal``), whose actions include ``s3:GetObject`` (``s3:GetObject``, ``s3:Get*``, ``s3:*``,
    ``*``, or a ``NotAction`` that leaves it), on a resource naming objects of the bucket, without a
    Condition that pins the caller (:func:`restricting_condition`). ``Deny`` statements are not
    weighed against it: a grant to everyone is reported even where a Deny may narrow it.
    Raises ``ValueError`` when the policy is not a JSON object with statements.
    """
    document = json.loads(policy) if isinstance(policy, str) else policy
    if not isinstance(document, dict):
        raise ValueError("the bucket policy is not a JSON object")
    statements = _listed(document.get("Statement"))
    found: list[str] = []
    for index, statement in enumerate(statements):
        if not isinstance(statement, dict):
            raise ValueError(f"statement {index} of the bucket policy is not an object")
        if str(statement.get("Effect", "")).lower() != "allow":
            continue
        if not ("NotPrincipal" in statement or _everyone(statement.get("Principal"))):
            continue
        if not (_reads(statement) and _resources_cover(statement, bucket)):
            continue
        if restricting_condition(statement.get("Condition")):
            continue
        name = statement.get("Sid") or f"#{index}"
        actions = _listed(statement.get("Action", statement.get("NotAction")))
        found.append(f"statement {name} allows {', '.join(map(str, actions))} to everyone")
    return found


# --------------------------------------------------------------------------- anonymous reads: bucket ACL

#: The ACL groups that stand for everyone (AllUsers) and any AWS account at all (AuthenticatedUsers).
PUBLIC_GROUPS = {"http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
                 "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers"}


def public_acl_grants(grants: Iterable[dict[str, Any]]) -> list[str]:
    """The grants of a bucket ACL (GetBucketAcl ``Grants``) to everyone, as ``"<group>: <permission>"``."""
    found: list[str] = []
    for grant in grants:
        grantee = grant.get("Grantee") or {}
        uri = str(grantee.get("URI") or "")
        group = PUBLIC_GROUPS.get(uri) or next((name for name in PUBLIC_GROUPS.values()
                                                if uri.rstrip("/").endswith(f"/{name}")), None)
        if group:
            found.append(f"{group}: {grant.get('Permission', '?')}")
    return found

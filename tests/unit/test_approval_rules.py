"""Who may decide, and when a request is decided: the rules every channel shares."""

from datetime import UTC, datetime, timedelta

import pytest

from clearance.approvals import (
    ApprovalRecord,
    ApprovalRequest,
    Decision,
    Outcome,
    RefusalReason,
    Vote,
    authorise,
    tally,
)
from clearance.config.schema import Channel, Principal, TimeoutOutcome

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DIGEST = "a" * 64


def request(**overrides) -> ApprovalRequest:
    fields = dict(run_id="r1", model="churn", version="1.0.0", tier="high", artifact_digest=DIGEST,
                  evidence_digest="e" * 64, required_roles={"security": 1, "business": 1},
                  excluded_principals=["dana"], initiator="dana", channels=[Channel.CLI, Channel.SLACK],
                  opened_at=NOW, deadline=NOW + timedelta(hours=1))
    fields.update(overrides)
    return ApprovalRequest(**fields)


def person(pid: str, *roles: str) -> Principal:
    return Principal(id=pid, roles=list(roles))


def decided(record: ApprovalRecord, who: Principal, vote: Vote = Vote.APPROVE) -> ApprovalRecord:
    record.decisions.append(Decision(principal=who.id, channel=Channel.CLI, vote=vote, roles=who.roles,
                                     artifact_digest=DIGEST, evidence_digest="e" * 64, at=NOW))
    return record


@pytest.mark.parametrize(
    ("who", "channel", "digest", "at", "reason"),
    [
        (None, Channel.CLI, DIGEST, NOW, RefusalReason.UNKNOWN_PRINCIPAL),
        (person("sam", "security"), Channel.JIRA, DIGEST, NOW, RefusalReason.CHANNEL_NOT_ALLOWED),
        (person("dana", "security"), Channel.CLI, DIGEST, NOW, RefusalReason.SELF_APPROVAL),
        (person("carl", "compliance"), Channel.CLI, DIGEST, NOW, RefusalReason.MISSING_ROLE),
        (person("sam", "security"), Channel.CLI, "b" * 64, NOW, RefusalReason.DIGEST_MISMATCH),
        (person("sam", "security"), Channel.CLI, DIGEST, NOW + timedelta(hours=2), RefusalReason.DEADLINE_PASSED),
    ],
)
def test_refusals(who, channel, digest, at, reason):
    refused = authorise(ApprovalRecord(request=request()), who, channel, Vote.APPROVE, digest, at)
    assert refused is not None and refused[0] is reason and refused[1]


def test_author_is_excluded_even_when_not_initiator():
    record = ApprovalRecord(request=request(excluded_principals=["dana", "alex"]))
    refused = authorise(record, person("alex", "business"), Channel.CLI, Vote.APPROVE, DIGEST, NOW)
    assert refused[0] is RefusalReason.SELF_APPROVAL and "author" in refused[1]


def test_same_person_counted_once():
    sam = person("sam", "security")
    record = decided(ApprovalRecord(request=request()), sam)
    assert authorise(record, sam, Channel.SLACK, Vote.APPROVE, DIGEST, NOW)[0] is RefusalReason.ALREADY_COUNTED


def test_closed_request_refuses():
    record = ApprovalRecord(request=request(), outcome=Outcome.APPROVED)
    assert authorise(record, person("sam", "security"), Channel.CLI, Vote.APPROVE, DIGEST, NOW)[0] \
        is RefusalReason.REQUEST_CLOSED


def test_allowed_decision():
    assert authorise(ApprovalRecord(request=request()), person("sam", "security"), Channel.CLI, Vote.APPROVE,
                     DIGEST, NOW) is None


def test_quorum_needs_distinct_people_of_each_role():
    record = ApprovalRecord(request=request())
    decided(record, person("sam", "security"))
    assert tally(record, NOW).outcome is Outcome.PENDING
    assert tally(record, NOW).missing == {"security": 0, "business": 1}
    decided(record, person("sol", "security"))
    assert tally(record, NOW).outcome is Outcome.PENDING  # two security people do not make a business one
    decided(record, person("bea", "business"))
    assert tally(record, NOW).outcome is Outcome.APPROVED


def test_one_person_with_two_roles_fills_one_slot():
    record = decided(ApprovalRecord(request=request()), person("max", "security", "business"))
    assert tally(record, NOW).outcome is Outcome.PENDING
    decided(record, person("sam", "security"))  # matching moves max to business
    state = tally(record, NOW)
    assert state.outcome is Outcome.APPROVED
    assert state.counted == {"business": ["max"], "security": ["sam"]}


def test_role_quorum_of_two():
    record = ApprovalRecord(request=request(required_roles={"security": 2}))
    decided(record, person("sam", "security"))
    assert tally(record, NOW).missing == {"security": 1}
    decided(record, person("sol", "security"))
    assert tally(record, NOW).outcome is Outcome.APPROVED


def test_one_rejection_rejects():
    record = decided(ApprovalRecord(request=request()), person("sam", "security"))
    decided(record, person("bea", "business"), Vote.REJECT)
    state = tally(record, NOW)
    assert state.outcome is Outcome.REJECTED and state.rejected_by == ["bea"]


def test_deadline_applies_timeout_outcome():
    late = NOW + timedelta(hours=2)
    assert tally(ApprovalRecord(request=request()), late).outcome is Outcome.TIMED_OUT
    lenient = ApprovalRecord(request=request(timeout_outcome=TimeoutOutcome.APPROVE))
    assert tally(lenient, late).outcome is Outcome.APPROVED

"""One tally, every channel: Slack's approval message, the Jira tally comment and the report show the same."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from clearance.approvals import ApprovalRecord, ApprovalRequest, Decision, Outcome, Vote, tally
from clearance.config.schema import Channel
from clearance.render import jira, markdown, slack
from clearance.render.jira_comments import tally_comment
from clearance.render.report import build_report
from clearance.render.slack_messages import approval_message
from clearance.settings import JiraSettings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = JiraSettings(url="https://jira.example", project="CLR", email="bot@example.com", api_token="x")


def request() -> ApprovalRequest:
    return ApprovalRequest(run_id="r1", model="churn", version="1.0.0", tier="high", artifact_digest="ab" * 32,
                           evidence_digest="cd" * 32, required_roles={"security": 2, "business": 1},
                           excluded_principals=["dana"], initiator="dana", channels=[Channel.SLACK, Channel.JIRA],
                           opened_at=NOW, deadline=NOW + timedelta(hours=1))


def decide(record: ApprovalRecord, who: str, roles: list[str], vote: Vote = Vote.APPROVE) -> ApprovalRecord:
    record.decisions.append(Decision(principal=who, channel=Channel.SLACK, vote=vote, roles=roles, comment="why",
                                     artifact_digest="ab" * 32, evidence_digest="cd" * 32, at=NOW))
    return record


Facts = tuple[dict[str, list[str]], dict[str, int], list[str]]


def from_slack(record: ApprovalRecord) -> Facts:
    _, blocks = approval_message(record, [], now=NOW, eligible={"security": ["sol", "sam", "ray"], "business": ["sol"]})
    section = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Approvals*"))
    counted, missing, rejected = {}, {}, []
    for line in section.splitlines()[1:]:
        if m := re.match(r"^:\w+: \*(?P<role>[^*]+)\*: (?P<n>\d+)/(?P<need>\d+) \((?P<who>.*)\)"
                         r"(?: — needs \d+ more.*)?$", line):
            counted[m["role"]] = [] if m["who"] == "nobody yet" else m["who"].split(", ")
            missing[m["role"]] = int(m["need"]) - int(m["n"])
        elif m := re.match(r"^:x: rejected by \*(?P<who>.+)\* \((?:verified|claimed)\) via \w+$", line):
            rejected.append(m["who"])
    return counted, missing, rejected


def _table(lines: list[str], split: str) -> Facts:
    counted, missing, rejected = {}, {}, []
    for line in lines:
        cells = [c.strip() for c in re.split(split, line.strip())[1:-1]]
        if len(cells) == 4 and cells[1].isdigit():
            counted[cells[0]] = [] if cells[2] == "-" else cells[2].split(", ")
            missing[cells[0]] = int(cells[3])
        elif line.startswith("Rejected by: "):
            rejected = line[len("Rejected by: "):].split(", ")
    return counted, missing, rejected


def from_jira(record: ApprovalRecord) -> Facts:
    return _table(tally_comment(record, SETTINGS, now=NOW).splitlines(), r"(?<!\\)\|")


def from_report(record: ApprovalRecord) -> Facts:
    report = build_report(model="churn", version="1.0.0", tier="high", run_id="r1", initiator="dana",
                          artifact_digest="ab" * 32, results=[], outcome="x", record=record)
    md = markdown.to_markdown(report)
    return _table(md[md.index("## Sign-off"):].splitlines(), r"(?<!\\)\|")


def test_the_same_tally_in_slack_jira_and_the_report_at_every_step() -> None:
    record = ApprovalRecord(request=request())
    steps = [lambda r: r, lambda r: decide(r, "sol", ["security", "business"]),
             lambda r: decide(r, "sam", ["security"]), lambda r: decide(r, "ray", ["security"], Vote.REJECT)]
    seen = []
    for step in steps:
        record = step(record)
        truth = tally(record, NOW)
        expected = (truth.counted, truth.missing, truth.rejected_by)
        assert from_slack(record) == from_jira(record) == from_report(record) == expected
        seen.append(expected)
    # sol holds both roles and counts once; the rejection is shown everywhere
    assert [s[1] for s in seen] == [{"business": 1, "security": 2}, {"business": 0, "security": 2},
                                    {"business": 0, "security": 1}, {"business": 0, "security": 1}]
    assert seen[-1][2] == ["ray"]
    closed = record.model_copy(update={"outcome": Outcome.REJECTED, "closed_at": NOW, "closed_by": ["ray"],
                                       "closing_channel": Channel.SLACK})
    assert from_slack(closed) == from_jira(closed) == from_report(closed) == seen[-1]
    assert "Sign-off: rejected" in tally_comment(closed, SETTINGS, now=NOW)


@pytest.mark.parametrize("name", ["<!channel>", "*x*", "[a|https://evil.example]", "a|b"])
def test_a_hostile_name_is_counted_in_the_same_place_everywhere(name: str) -> None:
    record = decide(ApprovalRecord(request=request()), name, ["business"])
    _, blocks = approval_message(record, [], now=NOW)
    section = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Approvals*"))
    assert f"*business*: 1/1 ({slack.escape(name)})" in section
    assert f"|business|1|{jira.escape(name)}|0|" in tally_comment(record, SETTINGS, now=NOW)
    report = build_report(model="churn", version="1.0.0", tier="high", run_id="r1", initiator="dana",
                          artifact_digest="ab" * 32, results=[], outcome="x", record=record)
    assert f"| business | 1 | {markdown.escape(name)} | 0 |" in markdown.to_markdown(report)

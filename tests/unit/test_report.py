"""The run report: one document, rendered as Markdown and as a self-contained, escaped HTML page."""

from __future__ import annotations

from html.parser import HTMLParser

from clearance.approvals import ApprovalRecord, Vote
from clearance.render.html import to_html
from clearance.render.markdown import to_markdown
from clearance.render.report import build_report
from gates.base import CheckResult, GateResult, Status
from tests.unit.test_approval_rules import DIGEST, decided, person, request
from tests.unit.test_render_markdown import markdown_to_html

EVIL = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def report(comment: str = "KPI reviewed"):
    gate = GateResult.from_checks("data_check", "1.0.0", [
        CheckResult(id="psi:eval:age", status=Status.WARN, observed=0.12, threshold={"warn": 0.1, "fail": 0.25},
                    message="eval.age: PSI 0.1200 | shifted"),
        CheckResult(id="rows:eval", status=Status.PASS, observed=1000, threshold=100),
    ], metrics={"eval.rows": 1000.0})
    record = ApprovalRecord(request=request())
    decided(record, person("sam", "security"))
    decided(record, person("bea", "business"), Vote.REJECT)
    record.decisions[-1] = record.decisions[-1].model_copy(update={"comment": comment})
    return build_report(model="churn", version="1.0.0", tier="high", run_id="r1", initiator="dana",
                        artifact_digest=DIGEST, results=[gate], outcome="rejected", record=record,
                        note="sign-off rejected")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_markdown_has_the_summary_each_gate_and_the_sign_off() -> None:
    md = to_markdown(report())
    assert md.startswith("# churn 1.0.0: REJECTED\n\n- tier: **high** · run: `r1` · initiator: `dana`\n")
    assert "- live before: nothing\n" in md and "## How to check this report" in md
    assert "| data_check | blocking | warn | psi:eval:age |" in md
    assert "### ⚠️ Gate data_check v1.0.0: **WARN** (blocking)" in md
    assert "| psi:eval:age | warn | 0.12 | {\"warn\": 0.1, \"fail\": 0.25} | eval.age: PSI 0.1200 \\| shifted |" in md
    assert "| eval.rows | 1000 |" in md
    assert "## Sign-off: rejected\n" in md and "| security | 1 | sam | 0 |" in md and "Rejected by: bea" in md
    assert "- approve by `sam` (claimed, security) via cli at 2026-11-25 12:00:00 UTC\n" in md
    assert "- reject by `bea` (claimed, business) via cli at 2026-11-25 12:00:00 UTC: KPI reviewed\n" in md


def test_html_is_self_contained_and_says_the_same() -> None:
    page = to_html(report())
    parsed = _Collect()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert page.startswith("<!DOCTYPE html>") and "default-src 'none'" in page
    assert {"table", "h1", "h3", "code", "ul"} <= set(parsed.tags)
    assert not {"script", "img", "link", "iframe"} & set(parsed.tags)  # nothing loaded from anywhere
    for fact in ("churn 1.0.0: REJECTED", "psi:eval:age", "eval.age: PSI 0.1200 | shifted", DIGEST, "KPI reviewed"):
        assert fact in text, fact
    assert '<span class="s s-warn">warn</span>' in page


def test_text_from_people_and_data_is_escaped_in_both_renderings() -> None:
    built = report(comment=EVIL)
    page = to_html(built)
    parsed = _Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert EVIL in "".join(parsed.text)  # shown as text, exactly
    assert EVIL.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace(" & ", " &amp; ") in page
    md = to_markdown(built)
    assert r'\<script\>alert("x")\</script\> &amp; \<img src=x onerror=alert(1)\>' in md
    shown = _Collect()  # the Markdown as a Markdown viewer shows it (raw HTML allowed): text, not tags
    shown.feed(markdown_to_html(md))
    assert "script" not in shown.tags and "img" not in shown.tags
    assert EVIL in "".join(shown.text)


def test_the_report_answers_who_when_what_and_how_to_check() -> None:
    from datetime import UTC, datetime

    from clearance.approvals import Refusal, RefusalReason
    from clearance.config.schema import Channel
    from clearance.render.report import RunFacts

    record = ApprovalRecord(request=request())
    decided(record, person("sam", "security"))
    record.refusals.append(Refusal(principal="dana", identity="os:dana", channel=Channel.CLI, vote=Vote.APPROVE,
                                   reason=RefusalReason.SELF_APPROVAL, message="dana authored churn",
                                   at=datetime(2026, 11, 25, 12, 5, 7, 123456, tzinfo=UTC)))
    facts = RunFacts(started_at=datetime(2026, 11, 25, 11, 58, 1, 999999, tzinfo=UTC), initiator_assurance="verified",
                     config_digest="c" * 64, previous_version="0.9.0", previous_run="run-0", owner="dana",
                     intended_use=EVIL, kpi="monthly_churn_rate: 0.042 → 0.036 (owner dana)")
    md = to_markdown(build_report(model="churn", version="1.0.0", tier="high", run_id="r1", initiator="dana",
                                  artifact_digest=DIGEST, results=[], outcome="promoted", record=record, facts=facts,
                                  written_at=datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
                                  production={"production/churn/1.0.0/model.joblib": "a" * 64}))
    assert "initiator: `dana` (verified)" in md
    assert "- started: 2026-11-25 11:58:01 UTC\n" in md and "- report written: 2026-11-25 12:30:00 UTC\n" in md
    assert f"- config digest: `{'c' * 64}`" in md and "- live before: `0.9.0` (run `run-0`)" in md
    assert "## The model" in md and "- KPI: monthly_churn_rate: 0.042 → 0.036 (owner dana)" in md
    assert "<script>" not in md  # the intended use is the manifest's text: escaped
    assert "approve by `sam` (claimed, security)" in md
    assert "refused `os:dana` via cli at 2026-11-25 12:05:07 UTC (self_approval): dana authored churn" in md
    assert "not a file's sha256" in md and "`clearance audit verify churn` re-checks" in md
    assert ".123456" not in md and "+00:00" not in md  # no raw timestamps for people

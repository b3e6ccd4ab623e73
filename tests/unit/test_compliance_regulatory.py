"""The regulatory mapping: the file's model validates sources and tags; controls judged from their evidence."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gates.base import CheckResult, Status
from gates.compliance_review.model_card import read_model_card
from gates.compliance_review.regulatory import RegulatoryMap, judge_controls, parse_source

MAP: dict[str, Any] = {
    "controls": {
        "pd": {"title": "Personal data declared", "evidence": ["check:personal_data"]},
        "dg": {"title": "Data governance", "evidence": ["gate:data_check", "model_card:training_data"]},
        "kpi": {"title": "KPI owned", "evidence": ["manifest:kpi.owner"]},
        "empty": {"title": "Nobody can show this yet", "evidence": []},
    },
    "tags": {"gdpr": ["pd", "kpi"], "ai-act": ["dg"], "aspirational": ["empty"]},
}
MANIFEST: dict[str, Any] = {"risk_tier": "high", "kpi": {"owner": "dana"},
                            "model_card": {"training_data": "Twelve months of pinned subscription events."}}


def _judge(tags: list[str], checks: list[CheckResult], earlier: dict[str, Any] | None = None,
           manifest: dict[str, Any] | None = None) -> tuple[dict[str, CheckResult], list[dict[str, Any]]]:
    manifest = MANIFEST if manifest is None else manifest
    card = read_model_card(manifest, None)
    result, table = judge_controls(tags, RegulatoryMap.model_validate(MAP), checks, earlier, card, manifest)
    return {c.id: c for c in result}, table


def _check(cid: str, status: Status) -> CheckResult:
    return CheckResult(id=cid, status=status)


@pytest.mark.parametrize("source", ["gate:data_check", "check:personal_data", "check:fairness:gender",
                                    "model_card:intended_use", "manifest:operations.monitoring"])
def test_valid_sources_parse(source: str) -> None:
    assert str(parse_source(source)) == source


@pytest.mark.parametrize(("source", "why"), [("data_check", "must start with"), ("gate:Data Check", "gate id"),
                                             ("model_card:purpose", "sections"), ("manifest:", "dotted"),
                                             ("check:", "prefix"), ("jira:ABC-1", "must start with")])
def test_invalid_sources_are_rejected_by_the_map(source: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        RegulatoryMap.model_validate({"controls": {"c": {"title": "t", "evidence": [source]}}, "tags": {}})


def test_a_tag_naming_an_unknown_control_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown control.*'nope'"):
        RegulatoryMap.model_validate({"controls": {"c": {"title": "t", "evidence": []}}, "tags": {"x": ["c", "nope"]}})


def test_extra_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RegulatoryMap.model_validate({"controls": {"c": {"title": "t", "evidence": [], "owner": "x"}}, "tags": {}})


def test_satisfied_controls_pass_and_the_table_says_what_satisfied_them() -> None:
    checks, table = _judge(["gdpr", "ai-act"], [_check("personal_data", Status.PASS),
                                                _check("personal_data:train:email", Status.PASS)],
                           earlier={"data_check": {"status": "warn"}})
    assert {cid: c.status for cid, c in checks.items()} == {
        "regulatory:gdpr:pd": Status.PASS, "regulatory:gdpr:kpi": Status.PASS, "regulatory:ai-act:dg": Status.PASS}
    rows = {(r["tag"], r["control"]): r for r in table}
    assert rows[("ai-act", "dg")]["satisfied_by"] == ["gate data_check warn",
                                                      "model card (manifest) section training_data"]
    assert rows[("gdpr", "kpi")]["satisfied_by"] == ["manifest kpi.owner"]


@pytest.mark.parametrize(("checks", "why"), [
    ([], "none ran"),
    ([CheckResult(id="personal_data", status=Status.SKIPPED)], "all skipped"),
    ([CheckResult(id="personal_data", status=Status.PASS),
      CheckResult(id="personal_data:train:email", status=Status.FAIL)], "1 of 2 failed"),
    ([CheckResult(id="personal_data_other", status=Status.PASS)], "none ran"),  # a prefix is a whole segment
])
def test_check_evidence_needs_a_judged_check_and_no_failure(checks: list[CheckResult], why: str) -> None:
    result, _ = _judge(["gdpr"], checks)
    assert result["regulatory:gdpr:pd"].status is Status.FAIL
    assert why in result["regulatory:gdpr:pd"].message


@pytest.mark.parametrize("status", ["fail", "error", "skipped"])
def test_gate_evidence_needs_the_gate_passed_or_warned(status: str) -> None:
    result, _ = _judge(["ai-act"], [], earlier={"data_check": {"status": status}})
    assert result["regulatory:ai-act:dg"].status is Status.FAIL


def test_missing_manifest_value_and_unwritten_card_section_fail() -> None:
    manifest = {"risk_tier": "high", "kpi": {"owner": "  "}, "model_card": {"training_data": "TBD"}}
    result, table = _judge(["gdpr", "ai-act"], [_check("personal_data", Status.PASS)],
                           earlier={"data_check": {"status": "pass"}}, manifest=manifest)
    assert result["regulatory:gdpr:kpi"].status is Status.FAIL
    assert result["regulatory:ai-act:dg"].status is Status.FAIL
    assert "model_card:training_data" in result["regulatory:ai-act:dg"].message
    row = next(r for r in table if r["control"] == "dg")
    assert [e["satisfied"] for e in row["evidence"]] == [True, False]


def test_a_control_without_evidence_fails() -> None:
    result, _ = _judge(["aspirational"], [])
    assert result["regulatory:aspirational:empty"].status is Status.FAIL


def test_unknown_tag_is_an_error_naming_it() -> None:
    result, table = _judge(["gdpr", "hipaa"], [_check("personal_data", Status.PASS)])
    assert result["regulatory:hipaa"].status is Status.ERROR
    assert "'hipaa'" in result["regulatory:hipaa"].message
    assert table[-1]["tag"] == "hipaa" and table[-1]["status"] == "error"


def test_preflight_leaves_gate_evidence_unjudged_but_still_fails_what_is_missing() -> None:
    result, _ = _judge(["ai-act"], [], earlier=None)
    assert result["regulatory:ai-act:dg"].status is Status.SKIPPED
    result, _ = _judge(["ai-act"], [], earlier=None, manifest={"risk_tier": "high"})
    assert result["regulatory:ai-act:dg"].status is Status.FAIL


def test_duplicate_tags_are_judged_once() -> None:
    result, table = _judge(["gdpr", "gdpr"], [_check("personal_data", Status.PASS)])
    assert len(table) == 2 and len(result) == 2


def test_earlier_gates_may_be_given_as_results() -> None:
    from gates.base import GateResult

    earlier = {"data_check": GateResult(gate_id="data_check", gate_version="1", status=Status.PASS)}
    result, _ = _judge(["ai-act"], [], earlier=earlier)
    assert result["regulatory:ai-act:dg"].status is Status.PASS

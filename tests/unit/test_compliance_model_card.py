"""The model card check of compliance_review: each defect named, a complete card passes, both sources agree."""

from __future__ import annotations

from typing import Any

import pytest

from gates.base import CheckResult, Status
from gates.compliance_review.model_card import (
    MAX_CARD_BYTES,
    REQUIRED_BY_TIER,
    SECTIONS,
    check_model_card,
    read_model_card,
)

COMPLETE: dict[str, Any] = {
    "intended_use": "Score retail credit applications to rank them for manual review.",
    "out_of_scope": "Automatic rejection of applicants; any use outside retail lending.",
    "training_data": "Applications from 2021 to 2024, pinned by digest; built by the features pipeline.",
    "evaluation": "Holdout of 2025 applications; AUC 0.81, calibration error 0.02.",
    "limitations": "Degrades for applicants with thin credit files; not validated for small business.",
    "ethical_considerations": "Selection rates are monitored per age band and sex every month.",
    "owner_contact": "risk-models@example.com",
    "risk_tier": "high",
    "regulatory_tags": ["gdpr", "eu-ai-act-high-risk"],
}

HEADINGS = {
    "intended_use": "Intended use", "out_of_scope": "Out-of-scope uses", "training_data": "Training data",
    "evaluation": "Evaluation results", "limitations": "Known failure modes",
    "ethical_considerations": "Ethical considerations", "owner_contact": "Contact", "risk_tier": "Risk tier",
    "regulatory_tags": "Regulatory tags",
}


def markdown_of(card: dict[str, Any], *, level: str = "##") -> str:
    parts = ["# Model card\n\nSome preamble that belongs to no section.\n"]
    for section, value in card.items():
        text = "\n".join(f"- {v}" for v in value) if isinstance(value, list) else value
        parts.append(f"{level} {HEADINGS[section]}\n\n{text}\n")
    return "\n".join(parts)


def run(card: dict[str, Any] | None = None, *, markdown: str | None = None, tier: str = "high",
        manifest_tier: Any = "high") -> dict[str, CheckResult]:
    manifest: dict[str, Any] = {"name": "credit", "risk_tier": manifest_tier}
    if card is not None:
        manifest["model_card"] = card
    checks = check_model_card(read_model_card(manifest, markdown), set(REQUIRED_BY_TIER[tier]))
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)), ids
    for check in checks:
        assert len(check.message) < 400
    return {c.id: c for c in checks}


def statuses(checks: dict[str, CheckResult]) -> dict[str, Status]:
    return {k: c.status for k, c in checks.items()}


def test_complete_card_passes_from_manifest_and_markdown() -> None:
    for checks in (run(COMPLETE), run(markdown=markdown_of(COMPLETE))):
        assert all(c.status is Status.PASS for c in checks.values()), statuses(checks)
        assert {f"model_card:{s}" for s in SECTIONS} | {"model_card", "model_card:risk_tier_matches"} == set(checks)


def test_required_by_tier_grows_and_high_is_all() -> None:
    assert REQUIRED_BY_TIER["low"] < REQUIRED_BY_TIER["medium"] < REQUIRED_BY_TIER["high"] == set(SECTIONS)


def test_no_card_at_all_fails_the_summary() -> None:
    checks = run()
    assert checks["model_card"].status is Status.FAIL
    assert "no model card" in checks["model_card"].message
    assert checks["model_card:intended_use"].status is Status.FAIL


def test_missing_required_section_is_named() -> None:
    card = {k: v for k, v in COMPLETE.items() if k != "limitations"}
    checks = run(card)
    assert checks["model_card:limitations"].status is Status.FAIL
    assert checks["model_card:limitations"].message == "required section limitations is missing"
    assert checks["model_card"].status is Status.PASS


def test_missing_section_not_required_is_not_reported() -> None:
    card = {k: v for k, v in COMPLETE.items() if k not in ("ethical_considerations", "risk_tier")}
    checks = run(card, tier="medium")
    assert "model_card:ethical_considerations" not in checks
    assert checks["model_card:risk_tier"].status is Status.FAIL


def test_empty_section_is_named() -> None:
    checks = run({**COMPLETE, "evaluation": "   \n "})
    assert checks["model_card:evaluation"].status is Status.FAIL
    assert "evaluation is empty" in checks["model_card:evaluation"].message
    checks = run(markdown=markdown_of({**COMPLETE, "evaluation": ""}))
    assert "evaluation is empty" in checks["model_card:evaluation"].message


@pytest.mark.parametrize(("text", "form"), [
    ("TBD", "TBD"), ("todo", "TODO"), ("TODO: write the limitations later", "TODO"), ("N/A", "N/A"),
    ("Lorem ipsum dolor sit amet, consectetur adipiscing", "lorem ipsum"), ("xxx", "xxx"), ("XXXX", "xxx"),
    ("?", "?"), ("???", "?"), ("<fill in>", "<fill in>"), ("<describe the data here>", "<fill in>"),
    ("Coming soon.", "coming soon"), ("Same as above", "same as above"), ("**TBD**", "TBD"),
])
def test_each_placeholder_form_is_named(text: str, form: str) -> None:
    for checks in (run({**COMPLETE, "limitations": text}),
                   run(markdown=markdown_of({**COMPLETE, "limitations": text}))):
        check = checks["model_card:limitations"]
        assert check.status is Status.FAIL
        assert f"limitations is a placeholder ({form!r})" in check.message


def test_placeholder_in_a_short_section_fails_too() -> None:
    checks = run({**COMPLETE, "owner_contact": "TBD"})
    assert checks["model_card:owner_contact"].status is Status.FAIL


def test_na_within_a_sentence_is_not_a_placeholder() -> None:
    checks = run({**COMPLETE, "ethical_considerations": "N/A because the model sees no personal attributes."})
    assert checks["model_card:ethical_considerations"].status is Status.PASS


def test_one_word_and_too_few_words_are_named() -> None:
    checks = run({**COMPLETE, "intended_use": "Scoring"})
    assert checks["model_card:intended_use"].status is Status.FAIL
    assert checks["model_card:intended_use"].message == "required section intended_use is a one-word answer"
    checks = run({**COMPLETE, "evaluation": "holdout set"})
    assert checks["model_card:evaluation"].message == "required section evaluation is 2 words, fewer than 3"
    card = read_model_card({"risk_tier": "high", "model_card": {**COMPLETE, "evaluation": "holdout set"}}, None)
    lenient = {c.id: c for c in check_model_card(card, set(SECTIONS), min_words=2)}
    assert lenient["model_card:evaluation"].status is Status.PASS


def test_short_sections_are_not_held_to_the_word_count() -> None:
    checks = run({**COMPLETE, "owner_contact": "alice", "regulatory_tags": "gdpr"})
    assert checks["model_card:owner_contact"].status is Status.PASS
    assert checks["model_card:regulatory_tags"].status is Status.PASS


def test_placeholder_in_a_section_not_required_warns() -> None:
    checks = run({**COMPLETE, "ethical_considerations": "TODO"}, tier="low")
    check = checks["model_card:ethical_considerations"]
    assert check.status is Status.WARN
    assert "ethical_considerations (not required) is a placeholder" in check.message


def test_mismatched_risk_tier_names_both() -> None:
    checks = run({**COMPLETE, "risk_tier": "low"}, manifest_tier="high")
    check = checks["model_card:risk_tier_matches"]
    assert check.status is Status.FAIL
    assert "'low'" in check.message and "'high'" in check.message
    assert run({**COMPLETE, "risk_tier": " **High** "})["model_card:risk_tier_matches"].status is Status.PASS


def test_card_tier_without_manifest_tier_fails() -> None:
    checks = run(COMPLETE, manifest_tier=None)
    assert checks["model_card:risk_tier_matches"].status is Status.FAIL
    assert "no risk_tier" in checks["model_card:risk_tier_matches"].message


def test_duplicate_heading_warns_and_joins() -> None:
    text = markdown_of(COMPLETE) + "\n## intended USE\n\nAlso used to prioritise collections calls.\n"
    checks = run(markdown=text)
    check = checks["model_card:duplicate_headings"]
    assert check.status is Status.WARN
    assert "'intended use'" in check.message
    card = read_model_card({"risk_tier": "high"}, text)
    assert "collections" in card.sections["intended_use"] and "retail credit" in card.sections["intended_use"]


def test_oversize_card_is_an_error_naming_the_size() -> None:
    big = "word " * (MAX_CARD_BYTES // 5 + 10)
    for checks in (run({**COMPLETE, "limitations": big}), run(markdown=markdown_of({**COMPLETE, "limitations": big}))):
        check = checks["model_card"]
        assert check.status is Status.ERROR
        assert str(check.observed) in check.message and str(MAX_CARD_BYTES) in check.message
        assert check.observed > MAX_CARD_BYTES
    for card in (read_model_card({"model_card": {**COMPLETE, "limitations": big}}, None),
                 read_model_card({}, markdown_of({**COMPLETE, "limitations": big}))):
        assert card.oversize and card.sections == {}  # not parsed past the limit


def test_card_just_under_the_limit_is_read() -> None:
    text = markdown_of(COMPLETE)
    filler = "word " * ((MAX_CARD_BYTES - len(text.encode()) - 100) // 5)
    checks = run(markdown=markdown_of({**COMPLETE, "limitations": COMPLETE["limitations"] + filler}))
    assert checks["model_card"].status is Status.PASS


def test_manifest_and_markdown_agree_on_the_same_content() -> None:
    variants: list[dict[str, Any]] = [
        COMPLETE,
        {**COMPLETE, "limitations": "TBD", "evaluation": "AUC"},
        {k: v for k, v in COMPLETE.items() if k != "training_data"},
        {**COMPLETE, "risk_tier": "medium", "ethical_considerations": "lorem ipsum"},
    ]
    for card in variants:
        for tier in REQUIRED_BY_TIER:
            from_manifest = run(card, tier=tier)
            from_markdown = run(markdown=markdown_of(card), tier=tier)
            assert {k: (c.status, c.message) for k, c in from_manifest.items() if k != "model_card"} == \
                   {k: (c.status, c.message) for k, c in from_markdown.items() if k != "model_card"}
            assert from_manifest["model_card"].status == from_markdown["model_card"].status


def test_headings_at_any_level_and_variants() -> None:
    for level in ("#", "###", "######"):
        checks = run(markdown=markdown_of(COMPLETE, level=level))
        assert all(c.status is Status.PASS for c in checks.values()), (level, statuses(checks))
    text = "## Out of scope\n\nNot for automated rejection decisions.\n\n## Owner:\n\nalice@example.com ##\n"
    card = read_model_card({}, text)
    assert card.sections["out_of_scope"].strip() == "Not for automated rejection decisions."
    assert card.sections["owner_contact"].strip() == "alice@example.com ##"


def test_unknown_subheading_stays_in_its_section_and_unknown_peer_ends_it() -> None:
    text = ("## Intended use\n\nRank applications.\n\n### Primary users\n\nUnderwriters in retail.\n\n"
            "## Appendix\n\nNot part of the card.\n")
    card = read_model_card({}, text)
    assert "Underwriters" in card.sections["intended_use"]
    assert "Appendix" not in card.sections["intended_use"] and "Not part" not in card.sections["intended_use"]


def test_headings_inside_code_fences_are_text() -> None:
    text = "## Limitations\n\n```\n## Risk tier\nlow\n```\nThin files degrade it badly.\n"
    card = read_model_card({}, text)
    assert "risk_tier" not in card.sections
    assert "Thin files" in card.sections["limitations"]


def test_hostile_values_are_named_not_crashed() -> None:
    checks = run({**COMPLETE, "intended_use": 42, "limitations": ["fine text", {"a": 1}],
                  "ethical_considerations": None, 7: "key is not text"})
    assert checks["model_card:intended_use"].message == "required section intended_use is not text (int)"
    assert "not text (list with non-text items)" in checks["model_card:limitations"].message
    assert "ethical_considerations is empty" in checks["model_card:ethical_considerations"].message
    assert run("a string, not a mapping")["model_card"].status is Status.FAIL  # type: ignore[arg-type]
    card = read_model_card({"risk_tier": 3}, b"## Intended use\n")  # type: ignore[arg-type]
    assert card.manifest_risk_tier is None
    assert check_model_card(card, set())[0].status is Status.FAIL


def test_messages_quote_at_most_a_bounded_snippet() -> None:
    long_tier = "h" * 5000
    checks = run({**COMPLETE, "risk_tier": long_tier}, manifest_tier="x" * 5000)
    check = checks["model_card:risk_tier_matches"]
    assert check.status is Status.FAIL
    assert len(check.message) <= 200 + 100
    assert len(str(check.observed)) < 100
    heading = "## " + "Intended use\n\nRank.\n\n## Intended use\n"
    assert len(run(markdown=heading)["model_card:duplicate_headings"].message) < 200

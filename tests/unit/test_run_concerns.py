"""gates/evidence.py run_concerns: the loop security_scan and compliance_review judge their concerns with."""

from __future__ import annotations

from gates.base import CheckResult, Status
from gates.evidence import run_concerns


def ok(check_id: str):
    def run(so_far: list[CheckResult]) -> list[CheckResult]:
        return [CheckResult(id=check_id, status=Status.PASS, message=f"after {len(so_far)}")]
    return run


def broken(_so_far: list[CheckResult]) -> list[CheckResult]:
    raise KeyError("column 'x'")


def test_a_concern_that_raises_is_one_error_check_and_the_others_still_report():
    checks = run_concerns([("first", ok("first")), ("second", broken), ("third", ok("third"))])
    assert [(c.id, c.status) for c in checks] == [("first", Status.PASS), ("second", Status.ERROR),
                                                  ("third", Status.PASS)]
    assert checks[1].message == "second could not be checked: KeyError: \"column 'x'\""
    assert checks[2].message == "after 2"  # each concern sees the checks before it


def test_the_gate_says_why_in_its_own_words():
    checks = run_concerns([("second", broken)], explain=lambda exc: f"read failed ({exc.args[0]})")
    assert checks[0].message == "second could not be checked: read failed (column 'x')"


def test_a_concern_cannot_change_the_checks_before_it():
    def meddle(so_far: list[CheckResult]) -> list[CheckResult]:
        so_far.clear()
        return []

    assert [c.id for c in run_concerns([("first", ok("first")), ("meddle", meddle)])] == ["first"]

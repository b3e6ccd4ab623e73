"""Waivers: which checks a waiver covers, what it turns them into, and what it never touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gates.base import CheckResult, GateResult, Status
from gates.waivers import Waiver, apply_waivers, matches, waivers_in_scope

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MODEL, VERSION = "churn-classifier", "1.4.2"
KEY = "candidates/churn-classifier/1.4.2/model.pkl"


def waiver(**changes) -> Waiver:
    fields = dict(gate="artifact_integrity", check="format:*", model=MODEL, versions=["1.4.*"],
                  reason="legacy pickle, ONNX export in ML-482", approved_by="sam",
                  expires_at=NOW + timedelta(days=30))
    return Waiver(**(fields | changes))


def result(*checks: tuple[str, Status], blocking: bool = True, gate_id: str = "artifact_integrity") -> GateResult:
    return GateResult.from_checks(gate_id, "1.0.0", [CheckResult(id=i, status=s) for i, s in checks],
                                  blocking=blocking)


def format_fails() -> GateResult:
    return result((f"exists:{KEY}", Status.PASS), (f"sha256:{KEY}", Status.PASS), (f"format:{KEY}", Status.FAIL))


def statuses(res: GateResult) -> dict[str, Status]:
    return {c.id: c.status for c in res.checks}


# --------------------------------------------------------------------------- what a covered check becomes


def test_a_covered_failure_becomes_waived_with_reason_approver_and_original_status() -> None:
    before = format_fails()
    assert before.stops_promotion
    after = apply_waivers(before, [waiver()], MODEL, VERSION, NOW)
    check = after.checks[2]
    assert check.status is Status.WAIVED and check.original_status is Status.FAIL
    assert check.waiver is not None
    assert "legacy pickle, ONNX export in ML-482" in check.waiver and "approved by sam" in check.waiver
    assert "2025-07-01" in check.waiver
    # The blocking gate whose only failure is waived no longer stops the promotion.
    assert after.status is Status.WAIVED and after.blocking and not after.stops_promotion
    # Untouched fields; the input is not mutated.
    assert after.checks[:2] == before.checks[:2] and after.gate_id == before.gate_id
    assert before.status is Status.FAIL and before.checks[2].waiver is None


def test_a_covered_warning_becomes_waived() -> None:
    after = apply_waivers(result((f"format:{KEY}", Status.WARN)), [waiver()], MODEL, VERSION, NOW)
    assert after.checks[0].status is Status.WAIVED and after.checks[0].original_status is Status.WARN
    assert after.status is Status.WAIVED


def test_error_is_never_waived() -> None:
    before = result((f"format:{KEY}", Status.ERROR), (f"size:{KEY}", Status.FAIL))
    after = apply_waivers(before, [waiver(check="format:*"), waiver(check="size:*")],
                          MODEL, VERSION, NOW)
    assert statuses(after) == {f"format:{KEY}": Status.ERROR, f"size:{KEY}": Status.WAIVED}
    assert after.checks[0].waiver is None and after.checks[0].original_status is None
    assert after.status is Status.ERROR and after.stops_promotion


def test_a_gate_that_could_not_decide_stays_error() -> None:
    crashed = GateResult(gate_id="artifact_integrity", gate_version="1.0.0", status=Status.ERROR,
                         message="gate could not decide: OSError: boom")
    assert apply_waivers(crashed, [waiver(check="format:*")], MODEL, VERSION, NOW).status is Status.ERROR


def test_a_gate_verdict_worse_than_its_checks_is_kept() -> None:
    # The gate said fail for a reason of its own (not only its checks): waiving the warning cannot lift it.
    gate_level = GateResult(gate_id="artifact_integrity", gate_version="1.0.0", status=Status.FAIL,
                            checks=[CheckResult(id=f"format:{KEY}", status=Status.WARN)])
    after = apply_waivers(gate_level, [waiver()], MODEL, VERSION, NOW)
    assert after.checks[0].status is Status.WAIVED and after.status is Status.FAIL


def test_pass_skipped_and_already_waived_are_untouched() -> None:
    earlier = CheckResult(id="format:old", status=Status.WAIVED, waiver="earlier", original_status=Status.FAIL)
    before = GateResult.from_checks("artifact_integrity", "1.0.0", [
        CheckResult(id=f"format:{KEY}", status=Status.PASS),
        CheckResult(id="format:other", status=Status.SKIPPED),
        earlier,
    ])
    after = apply_waivers(before, [waiver()], MODEL, VERSION, NOW)
    assert after == before
    assert after.checks[2].waiver == "earlier"


def test_an_unwaived_failure_still_stops_the_promotion() -> None:
    before = result((f"format:{KEY}", Status.FAIL), (f"sha256:{KEY}", Status.FAIL))
    after = apply_waivers(before, [waiver()], MODEL, VERSION, NOW)
    assert statuses(after) == {f"format:{KEY}": Status.WAIVED, f"sha256:{KEY}": Status.FAIL}
    assert after.status is Status.FAIL and after.stops_promotion


def test_an_advisory_gate_is_waived_the_same_way() -> None:
    after = apply_waivers(result((f"format:{KEY}", Status.FAIL), blocking=False), [waiver()], MODEL, VERSION, NOW)
    assert after.status is Status.WAIVED and not after.blocking


def test_first_matching_waiver_in_file_order_is_recorded() -> None:
    first = waiver(check=f"format:{KEY}", reason="exact one")
    second = waiver(reason="prefix one")
    after = apply_waivers(format_fails(), [first, second], MODEL, VERSION, NOW)
    assert after.checks[2].waiver.startswith("exact one")


# --------------------------------------------------------------------------- what is in scope


def test_expired_waiver_waives_nothing() -> None:
    before = format_fails()
    expired = waiver(expires_at=NOW - timedelta(seconds=1))
    assert apply_waivers(before, [expired], MODEL, VERSION, NOW) is before
    # Expiry is a hard edge: at expires_at it no longer covers.
    at_edge = waiver(expires_at=NOW)
    assert apply_waivers(before, [at_edge], MODEL, VERSION, NOW).status is Status.FAIL
    just_before = waiver(expires_at=NOW + timedelta(seconds=1))
    assert apply_waivers(before, [just_before], MODEL, VERSION, NOW).status is Status.WAIVED


@pytest.mark.parametrize("scope", [
    {"model": "fraud-scorer"},
    {"versions": ["1.5.*"]},
    {"versions": ["1.4.1", "1.4.3"]},
    {"gate": "data_check"},
    {"check": "sha256:*"},
    {"check": f"format:{KEY}.bak"},
])
def test_out_of_scope_waiver_waives_nothing(scope: dict) -> None:
    before = format_fails()
    assert apply_waivers(before, [waiver(**scope)], MODEL, VERSION, NOW) is before


@pytest.mark.parametrize(("pattern", "value", "hit"), [
    ("1.4.*", "1.4.0", True),
    ("1.4.*", "1.4.12", True),
    ("1.4.*", "1.40.0", False),
    ("1.4.*", "1.4", False),
    ("1.4.2", "1.4.2", True),
    ("1.4.2", "1.4.20", False),
    ("psi:eval:*", "psi:eval:tenure_months", True),
    ("psi:eval:*", "psi:train:tenure_months", False),
    ("format:a", "format:a", True),
    ("format:a", "format:ab", False),
])
def test_exact_ids_and_star_prefixes(pattern: str, value: str, hit: bool) -> None:
    assert matches(pattern, value) is hit


def test_waivers_in_scope_keeps_expired_ones_for_later_judgement() -> None:
    mine = [waiver(), waiver(expires_at=NOW - timedelta(days=1))]
    other = waiver(model="fraud-scorer")
    assert waivers_in_scope([*mine, other], MODEL, VERSION) == mine


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_waivers(format_fails(), [waiver()], MODEL, VERSION, datetime(2025, 6, 1))


def test_now_defaults_to_the_current_time() -> None:
    assert apply_waivers(format_fails(), [waiver(expires_at=datetime(2000, 1, 1, tzinfo=UTC))],
                         MODEL, VERSION).status is Status.FAIL
    far = datetime.now(UTC) + timedelta(days=1)
    assert apply_waivers(format_fails(), [waiver(expires_at=far)], MODEL, VERSION).status is Status.WAIVED


# --------------------------------------------------------------------------- the model refuses vague waivers


@pytest.mark.parametrize(("change", "field"), [
    ({"reason": ""}, "reason"),
    ({"reason": "   "}, "reason"),
    ({"expires_at": datetime(2025, 7, 1)}, "expires_at"),  # naive: which midnight?
    ({"expires_at": None}, "expires_at"),
    ({"check": "*"}, "check"),  # would waive the whole gate
    ({"check": "format: x"}, "check"),
    ({"check": "format:*:x"}, "check"),  # * only at the end
    ({"versions": []}, "versions"),
    ({"versions": ["*"]}, "versions.0"),  # would waive every version
    ({"versions": ["1.*.3"]}, "versions.0"),
    ({"approved_by": ""}, "approved_by"),
    ({"ticket": "ML-1"}, "ticket"),  # unknown keys are typos
])
def test_invalid_waivers_are_refused(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        waiver(**change)
    assert field in {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}


def test_expiry_is_required() -> None:
    fields = waiver().model_dump()
    del fields["expires_at"]
    with pytest.raises(ValidationError, match="expires_at"):
        Waiver.model_validate(fields)

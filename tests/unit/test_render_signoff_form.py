"""The text above the Prefect UI sign-off form: the tally so far and the last refusal, not the opening text."""

from __future__ import annotations

from clearance.approvals import ApprovalRecord, Refusal, RefusalReason, Vote
from clearance.config.schema import Assurance, Channel
from clearance.render.signoff_form import form_markdown
from tests.unit.test_render_tally import NOW, decide, request

HOSTILE = "*bold* <script>alert(1)</script> [link](http://evil) `code` @channel <!here>"


def test_the_reopened_form_shows_who_counted_who_is_still_needed_and_the_last_refusal() -> None:
    record = decide(ApprovalRecord(request=request()), "sam", ["security"])
    record.refusals.append(Refusal(principal="dana", identity="prefect-ui:dana", channel=Channel.PREFECT_UI,
                                   vote=Vote.APPROVE, reason=RefusalReason.SELF_APPROVAL,
                                   message="dana authored churn and may not approve it", at=NOW))
    text = form_markdown(record, NOW)
    assert "Sign-off: churn 1.0.0 (high tier)" in text
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    assert rows["security"] == ["2", "sam", "1"] and rows["business"] == ["1", "-", "1"]
    assert "Last refused:" in text and "self_approval: dana authored churn and may not approve it" in text
    assert "recorded as a claimed identity" in text


def test_a_verified_tier_says_a_typed_id_does_not_count_and_user_text_stays_text() -> None:
    record = ApprovalRecord(request=request().model_copy(update={"assurance": Assurance.VERIFIED}))
    record.refusals.append(Refusal(principal=None, identity=f"prefect-ui:{HOSTILE}", channel=Channel.PREFECT_UI,
                                   vote=Vote.REJECT, reason=RefusalReason.UNKNOWN_PRINCIPAL,
                                   message=f"no principal {HOSTILE}", at=NOW))
    text = form_markdown(record, NOW)
    assert "counts only verified decisions" in text
    import re

    outside_code = re.sub(r"(`+).*?\1", "", text)  # a code span shows its text literally
    assert "<script>" not in outside_code and "[link](http://evil)" not in outside_code
    assert "\\<script\\>" in text  # the refusal's message, escaped

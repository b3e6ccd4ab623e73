"""The Prefect UI's resume form of a promotion waiting for sign-off, as a person uses it in Chromium.

A real run on the session's Prefect server and SeaweedFS pauses for a security and a business approver. In the
Prefect UI (``<ui>/runs/flow-run/<id>``, the page clearance links to) a person opens the Resume dialog: its
description is the tally (:mod:`clearance.render.signoff_form`). The initiator approves her own model there
(refused); reopened, the form says so and why. A security approver's decision then changes the tally, and the
business approver's completes the quorum: the run promotes.
"""

from __future__ import annotations

import re
import time
from uuid import UUID

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from clearance.approvals import ApprovalRecord
from clearance.core.keys import approvals_key
from tests.browser.conftest import screenshot
from tests.integration.promotion_kit import (
    Candidate,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration

#: The UI is a single-page app that loads its bundle and then the run: generous, a loaded machine is slow.
UI_WAIT = 60
DIALOG = "//div[@role='dialog']"
UTC_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def wait_for_pause(run_id: str, key: str, timeout: float = 120) -> None:
    """Until the run is paused on the pause ``key`` (``sign-off-N``: the run's N-th wait for sign-off)."""
    from prefect import get_client

    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        seen = (state.type.value, state.state_details.pause_key) if state else None
        if seen == ("PAUSED", key):
            return
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} is {seen}, not paused on {key}, after {timeout}s")


def record_of(s3, cand: Candidate, run_id: str) -> ApprovalRecord:
    return ApprovalRecord.model_validate_json(s3.get_bytes(approvals_key(cand.model, "1.0.0", run_id))[0])


def open_form(driver: WebDriver, ui_url: str, run_id: str) -> WebElement:
    """The run's page, freshly loaded, with its Resume dialog open; returns the dialog."""
    driver.get(f"{ui_url}/runs/flow-run/{run_id}")
    wait = WebDriverWait(driver, UI_WAIT)
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Resume']"))).click()
    dialog = wait.until(ec.visibility_of_element_located((By.XPATH, DIALOG)))
    wait.until(lambda _: "Sign-off:" in dialog.text and dialog.find_elements(By.XPATH, ".//textarea"))
    return dialog


def field(dialog: WebElement, label: str, control: str) -> WebElement:
    """The first ``control`` (``textarea``, ``select``) after the form's ``<label>`` that reads ``label``."""
    return dialog.find_element(By.XPATH, f".//label[normalize-space()='{label}']/following::{control}[1]")


def submit(driver: WebDriver, dialog: WebElement, approver: str, decision: str, comment: str) -> None:
    """Fill the form as a person does and press Submit; the dialog closes."""
    field(dialog, "Approver (Optional)", "textarea").send_keys(approver)
    Select(field(dialog, "Decision (Optional)", "select")).select_by_visible_text(decision)
    field(dialog, "Comment (Optional)", "textarea").send_keys(comment)
    filled = [field(dialog, "Approver (Optional)", "textarea").get_attribute("value"),
              Select(field(dialog, "Decision (Optional)", "select")).first_selected_option.text,
              field(dialog, "Comment (Optional)", "textarea").get_attribute("value")]
    assert filled == [approver, decision, comment]  # each value in its own field, as the person typed it
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Submit']").click()
    WebDriverWait(driver, UI_WAIT).until(ec.invisibility_of_element_located((By.XPATH, DIALOG)))


def tally_rows(dialog: WebElement) -> list[list[str]]:
    """The tally table's rows as the person reads them (header first), in one round trip to the browser."""
    return dialog.parent.execute_script(
        "return [...arguments[0].querySelectorAll('table tr')].map(r => [...r.cells].map(c => c.innerText.trim()))",
        dialog)


def test_the_resume_form_shows_the_tally_and_what_a_submission_did(s3, prefect_service, browser, tmp_path) -> None:
    cand = make_candidate(tmp_path, s3)  # POLICY_HIGH: security + business, claimed identities, prefect-ui allowed
    log = tmp_path / "run.log"
    proc = start_direct_run(cand, "1.0.0", log=log)
    try:
        run_id = find_run(cand.model, "1.0.0")
        wait_for_request(s3, run_id)
        wait_for_pause(run_id, "sign-off-1")

        # What a person sees first: the request, nobody counted yet, who may not decide, how to decide here.
        dialog = open_form(browser, prefect_service.ui_url, run_id)
        screenshot(browser, tmp_path / "1-pending.png")
        text = dialog.text
        assert f"Sign-off: {cand.model} 1.0.0 (high tier)" in text and "Sign-off: pending" in text
        digest = record_of(s3, cand, run_id).request.artifact_digest
        assert f"Artifact digest {digest}" in text.replace("\n", " ")
        assert tally_rows(dialog) == [["role", "needed", "counted", "missing"], ["business", "1", "-", "1"],
                                      ["security", "1", "-", "1"]]
        assert re.search(f"Not eligible: dana. Deadline: {UTC_TIME} \\(then: reject\\).", text), text
        assert "The principal id you type is recorded as a claimed identity." in text
        assert "Last refused" not in text

        # The initiator approves her own model through the form: refused, and the reopened form says why.
        submit(browser, dialog, "dana", "approve", "my own model, looks fine")
        wait_for_pause(run_id, "sign-off-2")
        (refusal,) = record_of(s3, cand, run_id).refusals
        assert (refusal.identity, refusal.reason.value) == ("prefect-ui:dana", "self_approval")
        dialog = open_form(browser, prefect_service.ui_url, run_id)
        screenshot(browser, tmp_path / "2-refused.png")
        text = dialog.text
        assert re.search(f"Last refused: approve by dana via prefect-ui at {UTC_TIME} — self_approval: "
                         f"{re.escape(refusal.message)}", text.replace("\n", " ")), text
        assert tally_rows(dialog)[1:] == [["business", "1", "-", "1"], ["security", "1", "-", "1"]]

        # A security approver counts: the tally changes, business is still needed.
        submit(browser, dialog, "sam", "approve", "scan reviewed")
        wait_for_pause(run_id, "sign-off-3")
        dialog = open_form(browser, prefect_service.ui_url, run_id)
        screenshot(browser, tmp_path / "3-counted.png")
        text = dialog.text.replace("\n", " ")
        assert tally_rows(dialog)[1:] == [["business", "1", "-", "1"], ["security", "1", "sam", "0"]]
        assert re.search(f"approve by sam \\(claimed, security\\) via prefect-ui at {UTC_TIME}: scan reviewed",
                         text), text
        assert "Sign-off: pending" in text and "Last refused: approve by dana" in text

        # The business approver completes the quorum: the run leaves the pause and promotes.
        submit(browser, dialog, "bea", "approve", "KPI reviewed")
        assert finish(proc) == 0, log.read_text()[-3000:]
        assert wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED"
        browser.get(f"{prefect_service.ui_url}/runs/flow-run/{run_id}")
        WebDriverWait(browser, UI_WAIT).until(
            lambda d: "Completed" in d.find_element(By.TAG_NAME, "body").text)
        assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Resume']")
        screenshot(browser, tmp_path / "4-completed.png")
        record = record_of(s3, cand, run_id)
        assert record.outcome.value == "approved"
        assert [(d.principal, d.channel.value, d.identity) for d in record.decisions] == [
            ("sam", "prefect-ui", "prefect-ui:sam"), ("bea", "prefect-ui", "prefect-ui:bea")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

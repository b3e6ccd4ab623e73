"""The evidence report (``report.html``) of a real promotion, as a person sees it in Chromium.

A real run on the session's Prefect server and SeaweedFS: version 1.0.0 goes live first (a tier without
sign-off), then 2.0.0 on the high tier, where the initiator tries to approve her own model (refused, with hostile
markup as her comment), a security approver decides through the intake and a business approver through the
real CLI with hostile markup as the comment. The sealed page is read back from the store, opened as a file in a
headless Chromium and checked by what a reader gets: who, when, what, the gates, the refusal, how to check — and
the hostile text shown as text, with no element, script, dialog or request made from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from PIL import Image
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from clearance.render.report import ARTIFACT_DIGEST_MEANING
from tests.browser.conftest import screenshot
from tests.integration.promotion_kit import (
    POLICY_HIGH,
    Candidate,
    cli,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
)

pytestmark = pytest.mark.integration

HOSTILE = ("<img src=x onerror=alert(1)> *bold* [link|http://x] <script>window.__pwned=1</script> "
           "<img src=y onerror=\"window.__pwned=2\">")
INTENDED_USE = "Rank churn-risk customers for the retention team's weekly call list."
#: ``2026-12-01 22:17:43 UTC``: a time as a person reads it (UTC, to the second; no microseconds, no offset).
UTC_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC"
POLICY_LOW = {"tier": "low", "gates": POLICY_HIGH["gates"], "approvals": {"roles": {}}}


def moment(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def manifest_update(candidate: Candidate, **changes: object) -> None:
    path = candidate.config_dir / "models" / f"{candidate.model}.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | changes))


def promote(candidate: Candidate, version: str, log: Path) -> int:
    """A run of a tier without sign-off, to the end; its exit code."""
    return finish(start_direct_run(candidate, version, log=log))


def promoted_report(s3, tmp_path: Path) -> tuple[Candidate, str, str, str]:
    """(candidate, first run id, second run id, the second run's report.html)."""
    cand = make_candidate(tmp_path, s3, versions=("1.0.0", "2.0.0"))
    (cand.config_dir / "policies" / "low.yaml").write_text(yaml.safe_dump(POLICY_LOW))
    manifest_update(cand, risk_tier="low")
    assert promote(cand, "1.0.0", tmp_path / "first.log") == 0, (tmp_path / "first.log").read_text()[-3000:]
    first = find_run(cand.model, "1.0.0")
    manifest_update(cand, risk_tier="high", intended_use=INTENDED_USE,
                    kpi={"metric": "monthly churn", "baseline": 0.08, "target": 0.06, "owner": "bea"})
    log = tmp_path / "run.log"
    proc = start_direct_run(cand, "2.0.0", log=log)
    try:
        run_id = find_run(cand.model, "2.0.0")
        wait_for_request(s3, run_id)
        refused = cli(cand, "dana", "approve", run_id, "--comment", HOSTILE)
        assert refused.returncode == 1 and "self_approval" in refused.stderr, refused.stderr
        assert decide(s3, cand, run_id, "sam", comment="checked the scan").accepted
        done = cli(cand, "bea", "approve", run_id, "--comment", HOSTILE)
        assert done.returncode == 0, done.stderr
        assert finish(proc) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    page = s3.get_bytes(f"evidence/{cand.model}/2.0.0/{run_id}/report.html")[0].decode()
    return cand, first, run_id, page


def texts(driver: WebDriver, selector: str) -> list[str]:
    """The text a person reads in each element matching the CSS ``selector`` (one round trip)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())", selector)


def table_after(driver: WebDriver, heading: str) -> list[list[str]]:
    """The rows (header first) of the first table after the h2 that starts with ``heading``."""
    table = driver.find_element(By.XPATH, f"//h2[starts-with(normalize-space(), '{heading}')]"
                                          "/following-sibling::table[1]")
    return driver.execute_script(
        "return [...arguments[0].rows].map(r => [...r.cells].map(c => c.innerText.trim()))", table)


def one(items: list[str], prefix: str) -> str:
    found = [item for item in items if item.startswith(prefix)]
    assert len(found) == 1, (prefix, items)
    return found[0]


def test_the_report_a_person_opens_says_who_when_what_and_how_to_check(s3, browser, tmp_path) -> None:
    from tasks.candidate import config_digest
    from tasks.ledger import read_ledger

    cand, first_run, run_id, page = promoted_report(s3, tmp_path)
    path = tmp_path / "report.html"
    path.write_text(page)
    browser.get(path.as_uri())
    shot = screenshot(browser, tmp_path / "report.png")
    text = browser.execute_script("return document.body.innerText")
    (tmp_path / "report.txt").write_text(text)
    items = texts(browser, "li")

    # Nothing from the hostile comments ran or became an element, and the page asked for nothing elsewhere.
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 — reading it is what tells whether a dialog is open
    assert browser.execute_script("return window.__pwned") is None
    assert browser.execute_script("return [document.images.length, document.scripts.length, "
                                  "document.querySelectorAll('a, iframe, object, embed, link').length]") == [0, 0, 0]
    assert browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == []
    assert "default-src 'none'" in browser.find_element(
        By.XPATH, "//meta[@http-equiv='Content-Security-Policy']").get_attribute("content")
    assert "bold" not in texts(browser, "strong, em, b, i")

    # What: the run, its outcome, on which configs, what was live before, what the model is for.
    assert browser.title == texts(browser, "h1")[0] == f"{cand.model} 2.0.0: PROMOTED"
    assert texts(browser, "h2") == ["The model", "Gates", "Sign-off: approved", "Production",
                                      "How to check this report"]
    ledger = read_ledger(s3, cand.model)
    started = next(e for e in ledger if e.kind == "started" and e.payload["run"] == run_id)
    assert one(items, "config digest: ") == f"config digest: {started.payload['config_digest']}" \
        == f"config digest: {config_digest(cand.config_dir)}"
    assert one(items, "live before: ") == f"live before: 1.0.0 (run {first_run})"
    assert {one(items, p) for p in ("owner: ", "intended use: ", "KPI: ")} == {
        "owner: dana", f"intended use: {INTENDED_USE}", "KPI: monthly churn: 0.08 → 0.06 (owner bea)"}
    # Who started it and how they were identified (an OS login: claimed, not proven).
    assert one(items, "tier: ") == f"tier: high · run: {run_id} · initiator: dana (claimed)"

    # When: the start and the report in UTC to the second, around the decisions.
    start = moment(re.fullmatch(f"started: {UTC_TIME}", one(items, "started: ")).group(1))
    written = moment(re.fullmatch(f"report written: {UTC_TIME}", one(items, "report written: ")).group(1))
    assert "+00:00" not in text and not re.search(r"\d\d:\d\d:\d\d\.\d", text)  # no raw timestamps for people

    # The gates, as a table, and the check a person would look for.
    assert table_after(browser, "Gates") == [["gate", "mode", "status", "problems"],
                                             ["artifact_integrity", "blocking", "pass", "—"]]
    assert f"sha256:{cand.key('2.0.0')}" in texts(browser, "td")

    # Who approved: each approver with their role, channel, assurance, time and comment — the hostile one as text.
    assert table_after(browser, "Sign-off") == [["role", "needed", "counted", "missing"],
                                                ["business", "1", "bea", "0"], ["security", "1", "sam", "0"]]
    sam = re.fullmatch(f"approve by sam \\(claimed, security\\) via cli at {UTC_TIME}: checked the scan",
                       one(items, "approve by sam"))
    bea = re.fullmatch(f"approve by bea \\(claimed, business\\) via cli at {UTC_TIME}: (.*)",
                       one(items, "approve by bea"), re.DOTALL)
    assert sam and bea and bea.group(2) == HOSTILE, one(items, "approve by bea")
    # The refusal: who tried, through what, when, and why it did not count.
    refusal = re.fullmatch(f"refused os:dana via cli at {UTC_TIME} \\(self_approval\\): "
                           "dana may not decide: you initiated this promotion", one(items, "refused "))
    assert refusal, one(items, "refused ")
    assert "Not eligible: dana." in text
    assert start <= moment(refusal.group(1)) <= moment(sam.group(1)) <= moment(bea.group(1)) <= written

    # How to check: the artifact digest is what it says it is, recomputed here; the production copy's digest;
    # the command that verifies the whole run.
    artifacts = {cand.key("2.0.0"): cand.digests["2.0.0"]}
    digest = hashlib.sha256(json.dumps(artifacts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert one(items, "artifact digest: ") == f"artifact digest: {digest}"
    assert one(items, "production/") == f"production/{cand.model}/2.0.0/model.joblib sha256 {cand.digests['2.0.0']}"
    assert ARTIFACT_DIGEST_MEANING in text
    assert f"clearance audit verify {cand.model} re-checks the ledger's hash chain" in text

    # The screenshot is a real rendering: the window's width, and more than a blank page's colours.
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000, len(png)
    image = Image.open(io.BytesIO(png))
    assert image.width >= 1000 and image.height >= 600
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or ()) > 50

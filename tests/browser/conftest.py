"""A real headless Chromium for the session (Debian's ``chromium`` and ``chromium-driver``, see ``make browser``).

Selenium is pointed at the installed chromedriver, so Selenium Manager never tries to download a browser. A
missing chromedriver fails every test here with what to run: a browser test that skips proves nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

WINDOW = (1280, 1600)


def chromium_options() -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-US"):
        options.add_argument(argument)
    if os.geteuid() == 0:  # Chromium refuses to run its sandbox as root (CI containers)
        options.add_argument("--no-sandbox")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        options.binary_location = binary
    return options


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the session's browser tests."""
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.fail("chromedriver is not installed: run `make browser` (Debian's chromium and chromium-driver)",
                    pytrace=False)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = webdriver.Chrome(service=Service(executable_path=driver_path, log_output=str(log)),
                              options=chromium_options())
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failed browser test leaves what the browser showed (``failure.png``, ``failure.html``) in its tmp dir."""
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    driver, tmp_path = funcargs.get("browser"), funcargs.get("tmp_path")
    if report.when == "call" and report.failed and driver is not None and tmp_path is not None:
        try:
            screenshot(driver, tmp_path / "failure.png")
            (tmp_path / "failure.html").write_text(driver.page_source)
            report.sections.append(("browser", f"what the browser showed: {tmp_path / 'failure.png'}"))
        except Exception as exc:  # the test's own failure is what matters; say why there is no picture
            report.sections.append(("browser", f"no failure screenshot: {type(exc).__name__}: {exc}"))


def screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """The whole window as a PNG (kept in the test's tmp dir: look at it when a test fails)."""
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path

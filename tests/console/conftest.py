"""A headless Chromium driven by Selenium, for the console's tests.

Chromium and chromedriver come from Debian's packages (``apt-get install chromium
chromium-driver``); nothing is downloaded at run time. Without them (or without selenium) the
browser tests skip — unless DOCKYARD_REQUIRE_BROWSER=1 (as in CI), where they fail.
With DOCKYARD_CONSOLE_SCREENSHOTS=DIR the tests also save screenshots of the main views there
(docs/console.md shows them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from needs import unavailable

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)


REQUIRE_BROWSER = "DOCKYARD_REQUIRE_BROWSER"


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from selenium import webdriver
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[test]')", REQUIRE_BROWSER)
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        unavailable("no chromium/chromedriver (apt-get install chromium chromium-driver)", REQUIRE_BROWSER)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    # The page's console messages, read by the tests through get_log("browser").
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any) -> Any:
    """The browser with its console log emptied: what a test finds there is its own page's."""
    browser.get_log("browser")
    return browser


@pytest.fixture(scope="session")
def screenshot(browser: Any) -> Any:
    """screenshot(name): a PNG of the whole page into DOCKYARD_CONSOLE_SCREENSHOTS, when set."""
    target = os.environ.get("DOCKYARD_CONSOLE_SCREENSHOTS")

    def take(name: str) -> None:
        if not target:
            return
        Path(target).mkdir(parents=True, exist_ok=True)
        size = browser.get_window_size()
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(size["width"], min(max(height, 600), 4000))
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(Path(target) / f"{name}.png"))
        browser.set_window_size(size["width"], size["height"])

    return take

"""What the console's browser tests share: a model whose code logs each request (so a test finds
its own line in the log view) and small helpers that read and drive the page in headless
Chromium (selenium is imported inside them: it is only there when Chromium is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e.models import SKLEARN_URI, iris_classifier, package
from servers import Server

# Logs every request body, so that a test can find its own line in the console's log view.
LOGGING_INFERENCE = """
import io

import numpy as np

def input_fn(body, content_type):
    text = body.decode() if isinstance(body, bytes) else body
    print(f"console-test input {text.strip()}", flush=True)
    return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
"""
SECRET = "s3cr3t-do-not-show"


def console_model(tmp: Path, name: str) -> dict[str, Any]:
    data = package(tmp, iris_classifier(), LOGGING_INFERENCE, name=name)
    return {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": f"file://{data}",
                                 "Environment": {"CONSOLE_TEST_SECRET": SECRET}}}


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Errors the page wrote to the browser's console (uncaught exceptions, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait(driver: Any, seconds: float, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: condition(d), message)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def text(driver: Any, selector: str) -> str | None:
    """An element's text, read in one script: the views are redrawn live, so an element found a
    moment ago may be gone."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", selector)


def status_of(driver: Any, name: str) -> str | None:
    """The status the endpoint list shows (read in one script: the list is redrawn live)."""
    return driver.execute_script(
        "const b = document.querySelector(`tr[data-endpoint='${arguments[0]}'] .status`);"
        "return b ? b.textContent : null", name)


def open_endpoint(driver: Any, server: Server, name: str) -> None:
    driver.get(f"{server.url}/#/endpoints/{name}")
    wait(driver, 30, lambda d: css(d, ".endpoint-header .status"), "the endpoint's page did not load")
    wait(driver, 30, lambda d: css(d, ".live.on"), "the live channel did not connect")


def invoke_in_form(driver: Any, body: str) -> None:
    """Send ``body`` with the open endpoint page's invoke form and wait for the answer."""
    from selenium.webdriver.common.by import By

    form = css(driver, "form.invoke")[0]
    form.find_element(By.NAME, "body").send_keys(body)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, 30, lambda d: text(d, "#invoke-response"), "the invoke form showed no response")

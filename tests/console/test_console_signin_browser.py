"""Signing in to the console of a server with credentials in a real browser (headless Chromium):
refused with a wrong secret, then signed in, the endpoints and the invoke form working (its POST
carries the session's CSRF header), and signed out."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.deploy import create_endpoint, delete_all
from servers import Server

from console.pages import console_errors, console_model, css, invoke_in_form, open_endpoint, status_of, text, wait

KEY, SECRET = "AKIDBROWSER", "browser-secret"
SIGNIN = "/_dockyard/console/signin"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("signin-browser")
    srv = Server(root / "state", root / "server.log", credentials={KEY: SECRET}).start()
    yield srv
    srv.stop()


@pytest.fixture
def signed_out_page(page: Any) -> Iterator[Any]:
    """The browser, leaving no cookie behind: the other tests' servers share the host 127.0.0.1."""
    yield page
    page.delete_all_cookies()


def submit(driver: Any, key: str, secret: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.NAME, "access_key_id").send_keys(key)
    driver.find_element(By.NAME, "secret_access_key").send_keys(secret)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_sign_in_see_endpoints_invoke_and_sign_out(signed_out_page: Any, secured: Server, tmp_path: Path,
                                                   screenshot: Any) -> None:
    page, name = signed_out_page, "signed-in-iris"
    sm = secured.client("sagemaker")
    create_endpoint(sm, name, console_model(tmp_path, name))
    try:
        page.get(f"{secured.url}/")
        wait(page, 30, lambda d: d.current_url == f"{secured.url}{SIGNIN}", "the console did not redirect to its sign-in")
        screenshot("signin")
        submit(page, KEY, "not-the-secret")
        wait(page, 30, lambda d: text(d, "#signin-message"), "a wrong secret showed no message")
        assert text(page, "#signin-message") == "The access key id, secret access key or session token is wrong."
        assert page.current_url == f"{secured.url}{SIGNIN}" and page.get_cookies() == []

        page.get_log("browser")  # the refusal's 403 is logged by the browser: not the console's doing
        submit(page, KEY, SECRET)
        wait(page, 30, lambda d: css(d, ".live.on"), "the live channel did not connect after signing in")
        assert css(page, "h1")[0].text == "Endpoints"
        wait(page, 30, lambda d: status_of(d, name) == "InService", "the endpoint was not listed InService")
        assert css(page, "#signout")[0].is_displayed()

        open_endpoint(page, secured, name)
        body = "5.9,3.0,5.1,1.8"
        invoke_in_form(page, body)
        assert text(page, "#invoke-status") == "HTTP 200"
        expected = secured.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body.encode())
        assert json.loads(text(page, "#invoke-response") or "") == json.loads(expected["Body"].read())
        assert console_errors(page) == []

        css(page, "#signout")[0].click()
        wait(page, 30, lambda d: d.current_url == f"{secured.url}{SIGNIN}", "signing out did not return to the sign-in")
        assert page.get_cookies() == []
        page.get(f"{secured.url}/#/endpoints/{name}")
        wait(page, 30, lambda d: d.current_url.startswith(f"{secured.url}{SIGNIN}"), "the console opened after signing out")

        # A session ended elsewhere (here: signed out by another client with the same cookies):
        # the open page's live channel ends, and the page goes back to the sign-in by itself.
        submit(page, KEY, SECRET)
        wait(page, 30, lambda d: css(d, ".live.on"), "the live channel did not connect after signing in again")
        cookies = {c["name"]: c["value"] for c in page.get_cookies()}
        request = urllib.request.Request(f"{secured.url}/_dockyard/console/signout", method="POST", headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "X-Dockyard-Console-Token": cookies["dockyard-console-csrf"]})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204
        wait(page, 30, lambda d: d.current_url.startswith(f"{secured.url}{SIGNIN}"), "the page stayed after its session ended")
    finally:
        delete_all(sm, name)

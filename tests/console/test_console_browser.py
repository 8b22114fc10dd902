"""The console in a real browser (headless Chromium) against a real ``dockyard serve``, with
endpoints created and invoked through boto3 as user code would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.deploy import FAST_WAIT, create_endpoint, delete_all
from e2e.models import SKLEARN_URI, csv_stage_inference, iris_classifier, package
from servers import Server

from console.pages import LOGGING_INFERENCE, SECRET, console_errors, console_model, css, invoke_in_form, open_endpoint, status_of, text, wait


@pytest.fixture(scope="module")
def iris(sm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = "console-iris"
    create_endpoint(sm, name, console_model(tmp_path_factory.mktemp("console"), name))
    yield name
    delete_all(sm, name)


def test_the_page_loads_with_no_console_errors(page: Any, server: Server, screenshot: Any) -> None:
    page.get(f"{server.url}/")
    wait(page, 30, lambda d: css(d, ".live.on"), "the live channel did not connect")
    assert css(page, "h1")[0].text == "Endpoints"
    assert page.execute_script("return typeof uPlot") == "function"
    assert console_errors(page) == []


def test_a_new_endpoint_appears_and_its_status_changes_without_a_reload(
    page: Any, server: Server, sm: Any, tmp_path: Path
) -> None:
    page.get(f"{server.url}/")
    wait(page, 30, lambda d: css(d, ".live.on"), "the live channel did not connect")
    page.execute_script("window.consoleTestMarker = 'not reloaded'")
    name = "console-appears"
    create_endpoint(sm, name, console_model(tmp_path, name), wait=False)
    # The control plane wakes the live channel: the row is there well within 2 s.
    wait(page, 2, lambda d: status_of(d, name) is not None, "the new endpoint did not appear within 2 s")
    assert status_of(page, name) in ("Creating", "InService")
    wait(page, 120, lambda d: status_of(d, name) == "InService", "the status did not change to InService")
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    row = text(page, f"tr[data-endpoint='{name}']") or ""
    assert "AllTraffic · weight 1 · 1/1 instances" in row
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 3}])
    wait(page, 60, lambda d: "weight 3" in (text(d, f"tr[data-endpoint='{name}']") or ""), "the new weight was not shown")
    wait(page, 60, lambda d: status_of(d, name) == "InService", "the update did not end InService")
    assert page.execute_script("return window.consoleTestMarker") == "not reloaded"

    sm.delete_endpoint(EndpointName=name)
    wait(page, 60, lambda d: status_of(d, name) is None, "the deleted endpoint stayed in the list")
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)
    assert page.execute_script("return window.consoleTestMarker") == "not reloaded"
    assert console_errors(page) == []


def test_a_failed_endpoint_shows_its_failure_reason(
    page: Any, server: Server, sm: Any, iris: str, tmp_path: Path, screenshot: Any
) -> None:
    page.get(f"{server.url}/")
    wait(page, 30, lambda d: css(d, ".live.on"), "the live channel did not connect")
    name = "console-broken"
    broken = package(tmp_path, iris_classifier(), 'raise RuntimeError("console-test: this model cannot load")', name=name)
    create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": f"file://{broken}"}}, wait=False)
    try:
        wait(page, 120, lambda d: status_of(d, name) == "Failed", "the endpoint was not shown Failed")
        reason = sm.describe_endpoint(EndpointName=name)["FailureReason"]
        assert "console-test: this model cannot load" in reason
        shown = page.execute_script(
            "const row = document.querySelector(`tr[data-endpoint='${arguments[0]}']`).nextElementSibling;"
            "return row && row.classList.contains('failure') ? row.textContent : null", name)
        assert shown == reason
        assert status_of(page, iris) == "InService"
        screenshot("endpoints")
        assert console_errors(page) == []
    finally:
        delete_all(sm, name)


def _chart(driver: Any, container: str, title: str) -> dict[str, float]:
    """How many points a container's chart has, and its first series' largest value."""
    found = driver.execute_script(
        "const box = document.querySelector("
        "`.card[data-container='${arguments[0]}'] .chart[data-title='${arguments[1]}']`);"
        "return box ? [box.dataset.points, box.dataset.max] : null", container, title)
    points, largest = found or (0, 0)
    return {"points": int(points or 0), "max": float(largest or 0)}


def test_charts_have_points_after_invocations(page: Any, server: Server, iris: str, rt: Any) -> None:
    open_endpoint(page, server, iris)
    wait(page, 30, lambda d: "serving" in (text(d, "section.endpoint .health") or ""), "the instance is not serving")
    row = page.execute_script("return document.querySelectorAll('section.endpoint table')[1].tBodies[0].rows[0].textContent")
    assert "primary" in row and "managed" in row and "process" in row

    def busy(driver: Any) -> bool:
        for _ in range(20):
            rt.invoke_endpoint(EndpointName=iris, ContentType="text/csv", Body=b"5.1,3.5,1.4,0.2")
        traffic = _chart(driver, "AllTraffic/primary", "Invocations/s and errors/s")
        latency = _chart(driver, "AllTraffic/primary", "Latency p50 / p99 (ms)")
        resources = _chart(driver, "AllTraffic/primary", "CPU % and memory (MiB)")
        return traffic["max"] > 0 and latency["points"] > 0 and resources["points"] > 0

    wait(page, 60, busy, "the charts got no points from the invocations")
    assert console_errors(page) == []


def test_the_invoke_form_returns_the_models_answer(page: Any, server: Server, iris: str, rt: Any) -> None:
    open_endpoint(page, server, iris)
    body = "5.9,3.0,5.1,1.8\n6.3,3.3,4.7,1.6"
    invoke_in_form(page, body)
    expected = rt.invoke_endpoint(EndpointName=iris, ContentType="text/csv", Accept="application/json", Body=body.encode())
    assert text(page, "#invoke-status") == "HTTP 200"
    assert json.loads(text(page, "#invoke-response") or "") == json.loads(expected["Body"].read())
    assert (text(page, "#invoke-latency") or "").endswith(" ms")
    headers = page.execute_script(
        "return [...document.querySelectorAll('.invoke-result tr')].map(r => r.textContent)")
    assert any(h.startswith("content-type") and "application/json" in h for h in headers), headers
    assert console_errors(page) == []


def test_the_invoke_form_reaches_the_container_it_names(
    page: Any, server: Server, sm: Any, rt: Any, tmp_path: Path, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    name = "console-direct"
    classes = package(tmp_path, iris_classifier(), LOGGING_INFERENCE, name="classes")
    probabilities = package(tmp_path, iris_classifier(), csv_stage_inference("predict_proba"), name="probabilities")
    create_endpoint(sm, name, {
        "Containers": [
            {"ContainerHostname": "classes", "Image": SKLEARN_URI, "ModelDataUrl": f"file://{classes}"},
            {"ContainerHostname": "probabilities", "Image": SKLEARN_URI, "ModelDataUrl": f"file://{probabilities}"},
        ],
        "InferenceExecutionConfig": {"Mode": "Direct"},
    })
    try:
        open_endpoint(page, server, name)
        body = "5.9,3.0,5.1,1.8"
        form = css(page, "form.invoke")[0]
        wait(page, 30, lambda d: text(d, "select[name=targetContainer] option[value=probabilities]"),
             "the Direct endpoint's containers are not offered")
        Select(form.find_element(By.NAME, "targetContainer")).select_by_value("probabilities")
        invoke_in_form(page, body)
        expected = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="application/json",
                                      Body=body.encode(), TargetContainerHostname="probabilities")
        assert text(page, "#invoke-response") == expected["Body"].read().decode()

        # Load one container of the two: the contention charts show both, side by side.
        def loaded(driver: Any) -> bool:
            for _ in range(30):
                rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body.encode(),
                                   TargetContainerHostname="probabilities")
            return _chart(driver, "AllTraffic/probabilities", "Latency p50 / p99 (ms)")["points"] >= 5

        wait(page, 90, loaded, "the loaded container's charts got no points")
        assert page.execute_script(
            "return [...document.querySelectorAll('.contention .u-legend .u-label')].map(l => l.textContent)"
        ) == ["AllTraffic/classes", "AllTraffic/probabilities"] * 2
        screenshot("endpoint")
        assert console_errors(page) == []
    finally:
        delete_all(sm, name)


def test_a_containers_new_log_line_appears_in_the_log_view(page: Any, server: Server, iris: str, rt: Any) -> None:
    open_endpoint(page, server, iris)
    wait(page, 30, lambda d: css(d, "#logs div"), "the log view showed no tail")
    token = uuid.uuid4().int % 10**9
    line = f"console-test input 5.1,3.5,1.4,0.{token}"
    assert line not in (text(page, "#logs") or "")
    rt.invoke_endpoint(EndpointName=iris, ContentType="text/csv", Body=f"5.1,3.5,1.4,0.{token}".encode())
    wait(page, 30, lambda d: line in (text(d, "#logs") or ""), "the container's log line did not appear")
    assert console_errors(page) == []


def test_environment_values_are_masked(page: Any, server: Server, iris: str) -> None:
    open_endpoint(page, server, iris)
    details = css(page, "details.deployment")[0]
    details.click()
    wait(page, 30, lambda d: "CONSOLE_TEST_SECRET" in (text(d, "details.deployment pre") or ""),
         "the model behind the endpoint was not shown")
    assert SECRET not in page.page_source
    assert console_errors(page) == []


def test_the_strategy_form_ends_in_the_advisors_init_command(page: Any, server: Server, screenshot: Any) -> None:
    from selenium.webdriver.common.by import By

    from dockyard.strategy.advisor import Answers, advise

    page.get(f"{server.url}/#/choose")
    wait(page, 30, lambda d: text(d, "#advice-command"), "no advice was shown")
    assert text(page, "#advice-command") == advise(Answers()).next_command
    models = page.find_element(By.NAME, "models")
    models.clear()
    models.send_keys("3")
    page.find_element(By.NAME, "chain").click()
    expected = advise(Answers(models=3, chain=True))
    wait(page, 30, lambda d: text(d, "#advice-title") == expected.strategy.title, "the advice did not change")
    assert text(page, "#advice-command") == expected.next_command
    screenshot("choose")
    assert console_errors(page) == []


def test_a_stopped_server_leaves_the_page_waiting_without_an_uncaught_error(page: Any, tmp_path: Path) -> None:
    # On each failed reconnect the page asks whether its session ended; with the server gone that
    # question fails too, which must not surface as an unhandled promise rejection.
    srv = Server(tmp_path / "state", tmp_path / "server.log").start()
    try:
        page.get(f"{srv.url}/")
        wait(page, 30, lambda d: css(d, ".live.on"), "the live channel did not connect")
    finally:
        srv.stop()
    # Each failed reconnect asks whether the session ended: wait for two of those questions to
    # fail, so the first one's outcome (an uncaught rejection, before the fix) is surely logged.
    logged: list[dict[str, Any]] = []

    def asked_twice(d: Any) -> bool:
        logged.extend(e for e in d.get_log("browser") if e["level"] == "SEVERE")
        return sum("/_dockyard/console/api/endpoints" in e["message"] for e in logged) >= 2

    wait(page, 30, asked_twice, "the page did not ask after its session once the server had gone")
    assert [e["message"] for e in logged if "Uncaught" in e["message"]] == []
    assert page.current_url == f"{srv.url}/"

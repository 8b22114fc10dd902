"""The console's parts without a browser: the routes of a real server, log following, traffic
windows, masking, and the page's weight."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from servers import Server

from dockyard.console import traffic, views
from dockyard.console.logs import MAX_STEP_BYTES, LogFollower
from dockyard.console.routes import STATIC
from dockyard.gateway.metrics import GatewayMetrics
from dockyard.strategy.advisor import Answers, advise


def _get(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_page_and_its_assets_are_served(server: Server) -> None:
    status, headers, body = _get(f"{server.url}/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/_dockyard/console/static/console.js" in body
    for asset, kind in (("console.js", "javascript"), ("console.css", "text/css"), ("uPlot.iife.min.js", "javascript")):
        status, headers, _ = _get(f"{server.url}/_dockyard/console/static/{asset}")
        assert status == 200 and kind in headers["Content-Type"], asset


def test_the_page_and_its_scripts_stay_under_300_kb() -> None:
    total = sum(p.stat().st_size for p in STATIC.iterdir() if p.suffix in (".html", ".js", ".css"))
    assert total < 300 * 1024, f"the console weighs {total} bytes"
    assert (STATIC / "uPlot.LICENSE").read_text().startswith("The MIT License")


def test_advice_is_the_advisors(server: Server) -> None:
    answers = {"models": 4, "chain": False, "shared_container": False, "traffic": "high"}
    status, _, body = _get(f"{server.url}/_dockyard/console/api/advice",
                           json.dumps({"answers": answers, "directory": "svc"}).encode())
    assert status == 200
    assert json.loads(body) == advise(Answers(**answers), "svc").to_json()


def test_advice_on_impossible_answers_names_the_problem(server: Server) -> None:
    status, _, body = _get(f"{server.url}/_dockyard/console/api/advice", json.dumps({"answers": {"models": 0}}).encode())
    assert status == 400
    assert json.loads(body)["message"] == "Cannot advise on these answers: the number of models must be at least 1, got 0"
    status, _, body = _get(f"{server.url}/_dockyard/console/api/advice", json.dumps({"answers": {"colour": "red"}}).encode())
    assert status == 400 and "colour" in json.loads(body)["message"]


def test_an_unknown_endpoint_is_a_404_naming_it(server: Server) -> None:
    status, _, body = _get(f"{server.url}/_dockyard/console/api/endpoints/nope")
    assert status == 404 and json.loads(body) == {"message": "Endpoint nope not found."}


def test_environment_values_and_url_signatures_are_masked() -> None:
    spec = {"Containers": [
        {"Image": "a", "Environment": {"API_KEY": "k-123", "MODE": "x"},
         "ModelDataUrl": "https://bucket.example/model.tar.gz?X-Amz-Signature=abc"},
        {"Image": "b", "ModelDataUrl": "s3://bucket/model.tar.gz"},
    ]}
    masked = views.masked_model(spec)
    assert masked["Containers"][0]["Environment"] == {"API_KEY": views.MASK, "MODE": views.MASK}
    assert masked["Containers"][0]["ModelDataUrl"] == f"https://bucket.example/model.tar.gz?{views.MASK}"
    assert masked["Containers"][1] == spec["Containers"][1]
    assert spec["Containers"][0]["Environment"]["API_KEY"] == "k-123"  # the stored spec is untouched


def test_log_following_sends_each_complete_line_once(tmp_path: Path) -> None:
    log = tmp_path / "primary.log"
    log.write_text("old 1\nold 2\nhalf")
    follower = LogFollower()
    assert follower.tail(log, 1) == ["old 2"]
    assert follower.new_lines(log) == []
    with log.open("a") as f:
        f.write(" done\nnew 1\n")
    assert follower.new_lines(log) == ["half done", "new 1"]
    assert follower.new_lines(log) == []
    assert follower.tail(log, 5) == ["old 1", "old 2", "half done", "new 1"]
    log.write_text("after truncation\n")
    assert follower.new_lines(log) == ["after truncation"]


def test_a_flooding_log_is_read_a_bounded_step_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "primary.log"
    log.write_text("")
    follower = LogFollower()
    follower.tail(log, 10)
    log.write_text("x" * 99 + "\n" * 1 + ("y" * 99 + "\n") * 2000)
    first = follower.new_lines(log)
    assert 0 < sum(len(line) + 1 for line in first) <= MAX_STEP_BYTES
    rest = []
    while lines := follower.new_lines(log):
        rest += lines
    assert len(first) + len(rest) == 2001


def test_traffic_windows_are_rates_and_percentiles_of_the_last_interval() -> None:
    registry = CollectorRegistry()
    container = GatewayMetrics(registry).for_container("ep", "AllTraffic", "primary")
    for _ in range(100):
        container.invocations.inc()
        container.latency.observe(0.004)
    before = traffic.read(registry)[("ep", "AllTraffic", "primary")]
    assert traffic.window(None, before, 1.0)["rps"] is None
    for _ in range(50):
        container.invocations.inc()
        container.latency.observe(0.2)
    container.errors.inc(5)
    now = traffic.read(registry)[("ep", "AllTraffic", "primary")]
    window: dict[str, Any] = traffic.window(before, now, 2.0)
    assert window["rps"] == 25.0 and window["errorsPerSecond"] == 2.5
    # Only the last 50 (200 ms each) count: both percentiles fall in the 100–250 ms bucket.
    assert 100 < window["p50"] <= 250 and 100 < window["p99"] <= 250
    assert traffic.window(now, now, 1.0) == {"rps": 0.0, "errorsPerSecond": 0.0, "p50": None, "p99": None}


def test_with_credentials_the_console_answers_only_signed_requests(tmp_path: Path) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    secured = Server(tmp_path / "state", tmp_path / "server.log", credentials={"AKIDCONSOLE": "console-secret"}).start()
    try:
        # Unsigned and not signed in (the page itself redirects to the sign-in: test_console_signin.py).
        for path in ("/_dockyard/console/api/endpoints", "/_dockyard/console/events", "/_dockyard/console/static/console.js"):
            status, headers, _ = _get(f"{secured.url}{path}")
            assert (status, headers.get("x-amzn-ErrorType")) == (403, "MissingAuthenticationTokenException:"), path
        signed = AWSRequest(method="GET", url=f"{secured.url}/_dockyard/console/api/endpoints")
        SigV4Auth(Credentials("AKIDCONSOLE", "console-secret"), "sagemaker", "us-east-1").add_auth(signed)
        request = urllib.request.Request(signed.url, headers=dict(signed.headers.items()))
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"endpoints": []}
    finally:
        secured.stop()

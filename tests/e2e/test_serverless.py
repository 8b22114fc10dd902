"""Serverless variants end to end, boto3 against a real server on the process runtime: a
scikit-learn variant scales to zero when idle (its processes are gone) and cold-starts on the next
request; concurrent clients beyond MaxConcurrency get ThrottlingException; ProvisionedConcurrency
stays warm; a model that outgrows MemorySizeInMB answers ModelError naming the limit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from servers import Server

from dockyard.runtime.processes import owned_pids
from e2e.deploy import FAST_WAIT
from e2e.models import SKLEARN_URI, iris_classifier, package

# A hang guard for waiting on the server's background work, not a timing.
WAIT_LIMIT = 120.0
ROW = "5.1,3.5,1.4,0.2"

SLOW_INFERENCE = """
    import time

    def predict_fn(data, model):
        time.sleep(float(data[0][0]))
        return model.predict(data)
"""

GREEDY_INFERENCE = """
    import time

    import numpy as np

    def predict_fn(data, model):
        if data[0][0] > 100:  # about 1.5 GB, touched so that it is resident, held a while
            hoard = np.ones(200_000_000)
            time.sleep(5)
            return hoard[:1]
        return model.predict(data)
"""


@pytest.fixture
def server(tmp_path: Path):
    srv = Server(tmp_path / "state", tmp_path / "server.log",
                 {"DOCKYARD_SERVERLESS_IDLE_SECONDS": "1", "DOCKYARD_HEALTH_INTERVAL": "0.2"}).start()
    yield srv
    srv.stop()


def deploy(server: Server, tmp: Path, name: str, inference_py: str | None = None, **config: int) -> Any:
    sm = server.client("sagemaker")
    tarball = package(tmp, iris_classifier(), inference_py, name=name)
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                    PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()})
    variants = [{"VariantName": variant, "ModelName": name,
                 "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2, **extra}}
                for variant, extra in config.get("variants", {"AllTraffic": config}).items()]  # type: ignore[union-attr]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    return sm


def runtime(server: Server) -> Any:
    # Retries off: each test sees exactly what the server answered.
    return server.client("sagemaker-runtime", retries={"total_max_attempts": 1, "mode": "standard"})


def container_pids(server: Server) -> list[int]:
    """The server's container processes (its fork-server parents, which outlive containers, aside)."""
    return [p for p in owned_pids(str(server.state_dir.resolve())) if _comm(p) != "dockyard-zygote"]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def running_variants(server: Server, endpoint: str) -> list[str]:
    """The variants of ``endpoint`` the runtime runs containers for (``dockyard stats``' source)."""
    import json
    import urllib.request

    stats = json.load(urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/{endpoint}/stats"))
    return sorted(row["variant"] for row in stats["containers"])


def until(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.1)


def metric(server: Server, name: str, endpoint: str, variant: str = "AllTraffic") -> float:
    import urllib.request

    text = urllib.request.urlopen(f"{server.url}/metrics").read().decode()
    line = f'{name}{{endpoint="{endpoint}",variant="{variant}"}} '
    return float(next((row for row in text.splitlines() if row.startswith(line)), line + "0")[len(line):])


def test_idle_variant_scales_to_zero_and_cold_starts(server: Server, tmp_path: Path) -> None:
    sm = deploy(server, tmp_path, "sls")
    variant = sm.describe_endpoint(EndpointName="sls")["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    rt = runtime(server)
    assert rt.invoke_endpoint(EndpointName="sls", ContentType="text/csv", Body=ROW)["Body"].read() == b"[0]"

    until(lambda: not container_pids(server))  # idle: every container process is gone
    assert running_variants(server, "sls") == []
    assert sm.describe_endpoint(EndpointName="sls")["EndpointStatus"] == "InService"
    resp = rt.invoke_endpoint(EndpointName="sls", ContentType="text/csv", Body=ROW)
    assert resp["Body"].read() == b"[0]"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    assert container_pids(server)
    assert metric(server, "dockyard_serverless_cold_starts_total", "sls") == 1
    assert metric(server, "dockyard_serverless_cold_start_seconds_count", "sls") == 1
    # A streamed answer holds its slot until the stream ends, then gives it back: MaxConcurrency
    # is 2, so a leaked slot would throttle the third of these.
    for _ in range(3):
        stream = rt.invoke_endpoint_with_response_stream(EndpointName="sls", ContentType="text/csv", Body=ROW)
        assert b"".join(e["PayloadPart"]["Bytes"] for e in stream["Body"] if "PayloadPart" in e) == b"[0]"


def test_concurrent_clients_beyond_max_concurrency_are_throttled(server: Server, tmp_path: Path) -> None:
    deploy(server, tmp_path, "slow", SLOW_INFERENCE, MaxConcurrency=1, ProvisionedConcurrency=1)
    rt = runtime(server)
    start = threading.Barrier(3)
    outcomes: list[str] = []

    def call() -> None:
        start.wait()
        try:
            body = rt.invoke_endpoint(EndpointName="slow", ContentType="text/csv", Body="3,1,1,1")["Body"].read()
            outcomes.append("ok" if body.startswith(b"[") else f"answered {body!r}")
        except ClientError as exc:
            outcomes.append(f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {exc.response['Error']['Code']}")

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "429 ThrottlingException" in outcomes
    assert set(outcomes) == {"429 ThrottlingException", "ok"}
    assert metric(server, "dockyard_serverless_throttled_total", "slow") == outcomes.count("429 ThrottlingException")
    # dockyard stats shows them: per serverless variant, cold starts, mean duration, throttled.
    out = subprocess.run([sys.executable, "-m", "dockyard", "stats", "slow"], capture_output=True, text=True,
                         timeout=120, check=True, env={**os.environ, "DOCKYARD_URL": server.url, "COLUMNS": "200"})
    serverless = out.stdout[out.stdout.index("Serverless"):]
    row = next(line for line in serverless.splitlines() if "AllTraffic" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [
        "AllTraffic", "0", "-", str(outcomes.count("429 ThrottlingException"))]


def test_provisioned_concurrency_stays_warm(server: Server, tmp_path: Path) -> None:
    deploy(server, tmp_path, "mixed", variants={"Warm": {"ProvisionedConcurrency": 1}, "Cold": {}})
    until(lambda: running_variants(server, "mixed") == ["Warm"])  # the idle period has passed
    assert container_pids(server)
    resp = runtime(server).invoke_endpoint(EndpointName="mixed", ContentType="text/csv", Body=ROW, TargetVariant="Warm")
    assert resp["Body"].read() == b"[0]"
    assert metric(server, "dockyard_serverless_cold_starts_total", "mixed", "Warm") == 0


def test_memory_beyond_memory_size_is_model_error(server: Server, tmp_path: Path) -> None:
    deploy(server, tmp_path, "greedy", GREEDY_INFERENCE, ProvisionedConcurrency=1)
    rt = runtime(server)
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName="greedy", ContentType="text/csv", Body="1000,1,1,1")
    error = info.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert "exceeded the variant's MemorySizeInMB (1024 MB)" in error["Error"]["Message"]
    assert "Container primary was stopped: its resident memory" in error["OriginalMessage"]
    # The container is replaced; the next request is answered.
    until(lambda: _answers(rt, "greedy"))
    # DescribeEndpoint says why (the watchdog's reason, not just "killed by SIGKILL").
    reason = server.client("sagemaker").describe_endpoint(EndpointName="greedy")["FailureReason"]
    assert "container(s) primary of instance greedy-" in reason
    assert "was stopped: its resident memory" in reason and "exceeded the variant's MemorySizeInMB (1024 MB)" in reason


def _answers(rt: Any, endpoint: str) -> bool:
    try:
        return rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=ROW)["Body"].read() == b"[0]"
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("ServiceUnavailable", "ModelError"), exc.response
        return False

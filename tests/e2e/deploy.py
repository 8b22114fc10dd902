"""Deploying through boto3 the way user code does: model → endpoint config → endpoint → waiter."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dockyard.runtime.processes import owned_pids
from dockyard.runtime.zygote import ZYGOTE_NAME

FAST_WAIT = {"Delay": 1, "MaxAttempts": 120}


def create_endpoint(sm: Any, name: str, model: dict[str, Any], wait: bool = True, **variant: Any) -> dict[str, Any]:
    """Create model, config and endpoint all named ``name``; return DescribeEndpoint's answer."""
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/test", **model)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large", **variant,
        }],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    return sm.describe_endpoint(EndpointName=name)


def wait_settled(sm: Any, name: str, timeout: float = 120.0) -> dict[str, Any]:
    """DescribeEndpoint once the status is no longer Creating/Updating (Failed included)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] not in ("Creating", "Updating") or time.monotonic() > deadline:
            return desc
        time.sleep(0.1)


def delete_all(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def invoke_until_answered(rt: Any, name: str, body: str, timeout: float = 60.0, **extra: Any) -> bytes:
    """The reply body of the first invocation ``name`` answers, while its instance is replaced
    (meanwhile only ModelError or ServiceUnavailable are acceptable); ``extra``: more parameters
    of InvokeEndpoint (TargetModel)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body, **extra)["Body"].read()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in ("ModelError", "ServiceUnavailable")
            assert time.monotonic() < deadline, f"the instance of {name} was not replaced"
            time.sleep(0.2)


def sigkill_server(server: Any, owner: str) -> list[int]:
    """SIGKILL ``server``; the processes of ``owner`` still alive a few seconds later."""
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    deadline = time.monotonic() + 10
    while owned_pids(owner) and time.monotonic() < deadline:
        time.sleep(0.05)
    return owned_pids(owner)


def container_pids(owner: str) -> set[int]:
    """The container processes of the server owning ``owner`` (its state dir): not its fork
    servers, which are kept while the server runs and outlive any one container."""
    return {pid for pid in owned_pids(owner) if not _is_zygote(pid)}


def _is_zygote(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_bytes().strip() == ZYGOTE_NAME
    except OSError:
        return False


def endpoint_stats(server: Any, endpoint: str) -> dict[str, Any]:
    """What ``dockyard stats`` shows of ``endpoint``: its containers and (multi-model) models."""
    with urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/{endpoint}/stats", timeout=10) as resp:
        stats: dict[str, Any] = json.load(resp)
    return stats


def instance_ids(server: Any, endpoint: str) -> set[str]:
    """The ids of ``endpoint``'s running instances."""
    return {row["instance"] for row in endpoint_stats(server, endpoint)["containers"]}

"""Deploying through boto3 the way user code does: model → endpoint config → endpoint → waiter."""

from __future__ import annotations

from typing import Any

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
    import time

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

"""Deploying several endpoints at once, so their containers start side by side."""

from __future__ import annotations

from typing import Any

from e2e.deploy import create_endpoint, wait_settled


def deploy_all(sm: Any, models: dict[str, dict[str, Any]]) -> None:
    """Create every endpoint, then wait for each to be InService (failing with its reason)."""
    for name, model in models.items():
        create_endpoint(sm, name, model, wait=False)
    for name in models:
        desc = wait_settled(sm, name, timeout=180)
        assert desc["EndpointStatus"] == "InService", f"{name}: {desc.get('FailureReason')}"


def invoke(rt: Any, endpoint: str, body: str | bytes, **kwargs: Any) -> tuple[str, bytes]:
    """Content-Type and body of the endpoint's answer."""
    resp = rt.invoke_endpoint(EndpointName=endpoint, Body=body, **kwargs)
    return resp["ContentType"], resp["Body"].read()

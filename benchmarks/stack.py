"""A real ``dockyard serve`` (process runtime) on a free loopback port, driven through boto3
exactly as user code drives it: create model, endpoint config, endpoint; invoke; delete."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from benchmarks import procs
from benchmarks.fixtures import JSON_HEADERS, SAGEMAKER_BODY
from benchmarks.load import Target
from dockyard.cli.embedded import start_server, stop_server, wait_until_up
from dockyard.runtime.ports import free_port

# An AWS URI of SageMaker's scikit-learn image, as the SageMaker SDK generates it.
SKLEARN_URI = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/benchmark"
_POLL = 0.02


class DockyardStack:
    """The server, its boto3 client, and the endpoints deployed on it."""

    def __init__(self, root: Path, source: Path | None = None, settings: dict[str, str] | None = None) -> None:
        """``source``: a directory holding another ``dockyard`` package to run instead of this one
        (``src/`` of another checkout), for a side-by-side comparison; ``settings``: more
        ``DOCKYARD_*`` variables for the server."""
        root.mkdir(parents=True, exist_ok=True)
        self.state_dir = root / "state"
        self.log_path = root / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true",
            # As root, containers would run as nobody, who cannot read a Python installed under
            # /root; what is measured here is HTTP, not isolation.
            "DOCKYARD_CONTAINER_USER": os.environ.get("DOCKYARD_CONTAINER_USER", "root"),
            # Local model data is read only under allowed roots: the fixtures sit beside ``root``.
            "DOCKYARD_ALLOW_PATHS": str(root.resolve().parent),
            **(settings or {}),
        }
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source.resolve()), os.environ.get("PYTHONPATH")]))
        self._proc = start_server(self.state_dir, self.port, self.log_path, env=env)
        try:
            wait_until_up(self.url, self._proc)
        except RuntimeError:
            self.close()
            raise
        self.sm = boto3.client(
            "sagemaker", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 1}),
        )

    def close(self) -> None:
        stop_server(self._proc)

    def __enter__(self) -> DockyardStack:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def server_pid(self) -> int:
        return self._proc.pid

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    # --- endpoints ---------------------------------------------------------------------------

    def prepare(self, name: str, tarballs: list[Path], mode: str | None = None) -> None:
        """Model and endpoint config ``name``: one container per tarball (``c1``, ``c2``, …)."""
        model: dict[str, Any]
        if mode is None:
            model = {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarballs[0].resolve().as_uri()}}
        else:
            model = {
                "Containers": [
                    {"ContainerHostname": f"c{i}", "Image": SKLEARN_URI, "ModelDataUrl": t.resolve().as_uri()}
                    for i, t in enumerate(tarballs, 1)
                ],
                "InferenceExecutionConfig": {"Mode": mode},
            }
        self.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, **model)
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }],
        )

    def create_endpoint(self, name: str, timeout: float = 300.0) -> float:
        """CreateEndpoint, then DescribeEndpoint every 20 ms: seconds until InService."""
        started = time.perf_counter()
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        deadline = time.monotonic() + timeout
        while True:
            desc = self.sm.describe_endpoint(EndpointName=name)
            status = desc["EndpointStatus"]
            if status == "InService":
                return time.perf_counter() - started
            if status not in ("Creating", "Updating") or time.monotonic() > deadline:
                raise RuntimeError(f"endpoint {name} is {status}: {desc.get('FailureReason', '')}")
            time.sleep(_POLL)

    def deploy(self, name: str, tarballs: list[Path], mode: str | None = None) -> float:
        self.prepare(name, tarballs, mode)
        return self.create_endpoint(name)

    def delete_endpoint(self, name: str, timeout: float = 120.0) -> None:
        self.sm.delete_endpoint(EndpointName=name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(e["EndpointName"] == name for e in self.sm.list_endpoints(NameContains=name)["Endpoints"]):
                return
            time.sleep(_POLL)
        raise RuntimeError(f"endpoint {name} was not deleted within {timeout:g} s")

    def delete(self, name: str) -> None:
        self.delete_endpoint(name)
        self.sm.delete_endpoint_config(EndpointConfigName=name)
        self.sm.delete_model(ModelName=name)

    # --- what to load --------------------------------------------------------------------------

    def containers(self, name: str) -> dict[str, procs.Container]:
        found = procs.containers(self.state_dir, name)
        if not found:
            raise RuntimeError(f"no container process of endpoint {name} found under {self.state_dir}")
        return found

    def invoke_target(self, label: str, endpoint: str, body: bytes = SAGEMAKER_BODY) -> Target:
        """InvokeEndpoint as boto3 sends it, minus SigV4 (dockyard does not check signatures); the
        CPU recorded is the gateway's (the server process), not the container's."""
        return Target(label, f"{self.url}/endpoints/{endpoint}/invocations", body, JSON_HEADERS, self.server_pid())

    def direct_target(self, label: str, endpoint: str, body: bytes = SAGEMAKER_BODY) -> Target:
        """The same request straight to the endpoint's (only) container's port; CPU is the container's,
        its worker processes included."""
        (container,) = self.containers(endpoint).values()
        return Target(label, f"http://127.0.0.1:{container.port}/invocations", body, JSON_HEADERS, container.pid,
                      cpu_children=True)

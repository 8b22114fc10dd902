"""Shared fixtures: a real ``dockyard serve`` on a free loopback port and boto3 clients for it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.config import Config

from dockyard.cli.embedded import start_server, stop_server, wait_until_up
from dockyard.runtime.ports import free_port

# No real AWS anywhere: dummy credentials, and never the instance metadata service.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


class Server:
    """A running dockyard server: its URL, state dir, log, and boto3 clients."""

    def __init__(self, state_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.state_dir, self.log_path, self.extra_env = state_dir, log_path, extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> "Server":
        self.proc = start_server(self.state_dir, self.port, self.log_path, env=self.extra_env)
        wait_until_up(self.url, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)

    def client(self, service: str, **config: object):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(**config) if config else None,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dockyard")
    srv = Server(root / "state", root / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sm(server: Server):
    return server.client("sagemaker")


@pytest.fixture(scope="session")
def rt(server: Server):
    # Retries off: a test must see exactly what the server answered.
    return server.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"})

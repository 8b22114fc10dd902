"""Shared fixtures: a real ``dockyard serve`` on a free loopback port and boto3 clients for it."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from servers import Server

# No real AWS anywhere: dummy credentials, and never the instance metadata service.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


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

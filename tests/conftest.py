"""Shared fixtures: a real ``dockyard serve`` on a free loopback port and boto3 clients for it."""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from servers import Server

# No real AWS anywhere: dummy credentials, and never the instance metadata service.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A container engine's client. Without one, tests that need it skip — unless
    DOCKYARD_REQUIRE_DOCKER=1 (as in CI), where they fail."""
    from dockyard.runtime.docker_engine import EngineUnavailable, connect

    try:
        client = connect()
    except EngineUnavailable as exc:
        if os.environ.get("DOCKYARD_REQUIRE_DOCKER") == "1":
            pytest.fail(f"DOCKYARD_REQUIRE_DOCKER=1, but {exc}", pytrace=False)
        pytest.skip(f"no container engine: {exc}")
    yield client
    client.close()


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

"""Shared fixtures: a real ``dockyard serve`` on a free loopback port and boto3 clients for it; and
the conditions of the ``docker``, ``base_image`` and ``index`` markers, each checked once a session
(see needs.py for what skips and what fails)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from needs import REQUIRE_DOCKER, REQUIRE_FRAMEWORKS, unavailable
from servers import Server

# No real AWS anywhere: dummy credentials, and never the instance metadata service.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# As root, the server runs containers as `nobody`, who cannot enter pytest's private tmp dirs where
# the tests keep their container directories; tests/e2e/test_least_privilege.py covers `nobody`.
os.environ.setdefault("DOCKYARD_CONTAINER_USER", "root")


# A small pure-Python package: if pip can download it, the index answers.
INDEX_PROBE = "text-unidecode==1.3"
MARKER_FIXTURES = {"docker": "engine", "base_image": "base_image", "index": "package_index"}


@pytest.fixture(autouse=True)
def _marked_needs(request: pytest.FixtureRequest) -> None:
    """A test marked ``docker``, ``base_image`` or ``index`` gets that condition's fixture."""
    for marker, fixture in MARKER_FIXTURES.items():
        if request.node.get_closest_marker(marker) is not None:
            request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A container engine's client. Without one, tests that need it skip — unless
    DOCKYARD_REQUIRE_DOCKER=1 (as in CI), where they fail."""
    from dockyard.runtime.docker_engine import EngineUnavailable, connect

    try:
        client = connect()
    except EngineUnavailable:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        unavailable(f"no container engine answers at {where}: start dockerd or set DOCKER_HOST", REQUIRE_DOCKER)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(engine: Any) -> str | None:
    """The base image managed images build on, or None when ``mmdebstrap`` can make it."""
    from dockyard.images.build_base import local_base

    base = local_base(engine)
    if base is None and shutil.which("mmdebstrap") is None:
        unavailable("no base image to build on and no mmdebstrap to make one: apt-get install mmdebstrap",
                    REQUIRE_DOCKER)
    return base


@pytest.fixture(scope="session")
def sklearn_image(engine: Any, base_image: str | None) -> str:
    """The managed scikit-learn image (and the base image) with this tree's ``serving`` code: built
    every session, in seconds once the engine's layer cache has the framework."""
    from e2e.models import SKLEARN_URI

    from dockyard.images.build import BuildOptions, build

    build(engine, ["sklearn"], BuildOptions(), lambda line: print(line, flush=True))
    return SKLEARN_URI


@pytest.fixture(scope="session")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pip can download from the package index (as configured for this machine)."""
    dest = tmp_path_factory.mktemp("index-probe")
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), INDEX_PROBE],
                           capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        unavailable(f"the package index does not answer pip: {last}", REQUIRE_FRAMEWORKS)


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

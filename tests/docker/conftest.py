"""Fixtures for the docker runtime's tests: the images only they need (built once; the engine's
cache keeps them between runs; the managed scikit-learn image is tests/conftest.py's), and a
``dockyard serve --runtime docker`` with boto3 clients for it.

Tests marked ``docker`` skip when no engine answers, and those needing the managed image when
there is no base image to build it on — unless ``DOCKYARD_REQUIRE_DOCKER=1`` (as in CI), where
either fails them (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import owned_containers
from servers import Server

from dockyard.images.build import run_build
from dockyard.images.build_base import local_base

TESTS = Path(__file__).resolve().parents[1]
BYOC_DIR = TESTS.parent / "examples" / "byoc-cpp"
BYOC_IMAGE = "dockyard-tests/byoc-cpp:latest"
BYOC_MME_DIR = TESTS.parent / "examples" / "byoc-multi-model"
BYOC_MME_IMAGE = "dockyard-tests/byoc-mme:latest"
BYOC_MME_UNLABELLED = "dockyard-tests/byoc-mme:unlabelled"


def _report(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="session")
def byoc_image(engine: Any, sklearn_image: str) -> str:
    """examples/byoc-cpp built on the base image (layers cached by the engine)."""
    run_build(engine, _report, path=str(BYOC_DIR), tag=BYOC_IMAGE, buildargs={"BASE": local_base(engine)})
    return BYOC_IMAGE


@pytest.fixture(scope="session")
def byoc_mme_images(engine: Any, sklearn_image: str) -> tuple[str, str]:
    """examples/byoc-multi-model built on the base image: with the multi-models label, and the
    same server without it (its Dockerfile's ``plain`` stage)."""
    base = {"BASE": local_base(engine)}
    run_build(engine, _report, path=str(BYOC_MME_DIR), tag=BYOC_MME_IMAGE, buildargs=base)
    run_build(engine, _report, path=str(BYOC_MME_DIR), tag=BYOC_MME_UNLABELLED, buildargs=base, target="plain")
    return BYOC_MME_IMAGE, BYOC_MME_UNLABELLED


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, engine: Any, sklearn_image: str) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dockyard-docker")
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_RUNTIME": "docker"}).start()
    yield srv
    srv.stop()
    assert owned_containers(engine, srv.state_dir) == [], "a stopped server must leave no container behind"


# Redefined here, not inherited: a session fixture of tests/conftest.py would keep the clients of
# whichever server it was first built for.
@pytest.fixture(scope="session")
def sm(server: Server) -> Any:
    return server.client("sagemaker")


@pytest.fixture(scope="session")
def rt(server: Server) -> Any:
    return server.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"})

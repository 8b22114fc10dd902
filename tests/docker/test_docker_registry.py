"""ECR's role, played by a real OCI registry (Debian's ``docker-registry``, started here on a free
port): an image pushed there and named by an ECR-style URI is pulled and served when the server
maps ECR URIs to it (``DOCKYARD_REGISTRY``); a URI the registry lacks fails naming what was tried."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from docker_helpers import owned_containers, wait_for
from e2e.deploy import create_endpoint, delete_all, wait_settled
from servers import Server

from dockyard.images.build_base import image_present
from dockyard.runtime.ports import free_port

pytestmark = pytest.mark.docker

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[str]:
    """``host:port`` of a fresh registry storing its blobs in a temporary directory."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed: apt-get install docker-registry", pytrace=False)
    root = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"http:\n  addr: {address}\n")
    with (root / "registry.log").open("wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://{address}/v2/", timeout=1).status == 200
        except OSError:
            assert proc.poll() is None, (root / "registry.log").read_text()
            return False

    wait_for(answers, 30, f"the registry at {address}")
    yield address
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def mapped_server(registry, engine, tmp_path_factory, sklearn_image) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dockyard-registry")
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_RUNTIME": "docker", "DOCKYARD_REGISTRY": registry})
    yield srv.start()
    srv.stop()
    assert owned_containers(engine, srv.state_dir) == []


def push(engine: Any, image: str, reference: str) -> None:
    repository, tag = reference.rsplit(":", 1)
    engine.images.get(image).tag(repository, tag)
    for line in engine.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    # Only the registry has it now: serving it needs a pull.
    engine.images.remove(reference)


def test_an_ecr_uri_is_pulled_from_the_mapped_registry_and_served(mapped_server, registry, engine, byoc_image, tmp_path):
    pulled = f"{registry}/team/byoc-cpp:1.0"
    push(engine, byoc_image, pulled)
    assert not image_present(engine, pulled)
    sm = mapped_server.client("sagemaker")
    rt = mapped_server.client("sagemaker-runtime", retries={"max_attempts": 1})
    create_endpoint(sm, "from-registry", {"PrimaryContainer": {"Image": f"{ECR}/team/byoc-cpp:1.0"}})
    resp = rt.invoke_endpoint(EndpointName="from-registry", ContentType="text/csv", Body="1,2,3")
    assert b'"predictions": [6]' in resp["Body"].read()
    assert image_present(engine, pulled)
    delete_all(sm, "from-registry")
    engine.images.remove(pulled)


def test_an_ecr_uri_the_registry_lacks_fails_naming_what_was_tried(mapped_server, registry):
    sm = mapped_server.client("sagemaker")
    image = f"{ECR}/nowhere:1"
    create_endpoint(sm, "missing-image", {"PrimaryContainer": {"Image": image}}, wait=False)
    desc = wait_settled(sm, "missing-image")
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith(f"Image {image} is not available to the container engine. Tried: local image {image} (not present)")
    assert f"pull {registry}/nowhere:1 (" in reason
    delete_all(sm, "missing-image")


def test_without_a_registry_an_unbuilt_ecr_uri_says_how_to_configure_one(sm):
    image = f"{ECR}/my-model:2"
    create_endpoint(sm, "no-registry", {"PrimaryContainer": {"Image": image}}, wait=False)
    desc = wait_settled(sm, "no-registry")
    assert desc["EndpointStatus"] == "Failed"
    assert "set DOCKYARD_REGISTRY" in desc["FailureReason"]
    delete_all(sm, "no-registry")

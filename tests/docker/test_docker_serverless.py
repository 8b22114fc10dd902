"""A serverless variant on the docker runtime: MemorySizeInMB is the container's memory limit, and
the variant scales to zero (its containers removed) and back with the next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from docker_helpers import owned_containers, wait_for
from e2e.deploy import FAST_WAIT
from e2e.models import SKLEARN_URI, iris_classifier, package
from servers import Server

from dockyard.runtime.instance_types import GIB

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory, engine: Any, sklearn_image: str) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dockyard-docker-serverless")
    srv = Server(root / "state", root / "server.log", {
        "DOCKYARD_RUNTIME": "docker", "DOCKYARD_SERVERLESS_IDLE_SECONDS": "1", "DOCKYARD_HEALTH_INTERVAL": "0.2"}).start()
    yield srv
    srv.stop()
    assert owned_containers(engine, srv.state_dir) == [], "a stopped server must leave no container behind"


def test_serverless_memory_is_the_limit_and_idle_scales_to_zero(idle_server, engine, tmp_path):
    sm = idle_server.client("sagemaker")
    rt = idle_server.client("sagemaker-runtime", retries={"total_max_attempts": 1, "mode": "standard"})
    tarball = package(tmp_path, iris_classifier())
    sm.create_model(ModelName="sls", PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()})
    sm.create_endpoint_config(EndpointConfigName="sls", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "sls", "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 2}}])
    sm.create_endpoint(EndpointName="sls", EndpointConfigName="sls")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="sls", WaiterConfig=FAST_WAIT)

    [model] = owned_containers(engine, idle_server.state_dir, endpoint="sls", role="container")
    assert model.attrs["HostConfig"]["Memory"] == 3 * GIB
    assert model.attrs["HostConfig"]["NanoCpus"] == 1 * 10**9  # one vCPU per 2 GB

    wait_for(lambda: not owned_containers(engine, idle_server.state_dir, endpoint="sls"), 120, "scale to zero")
    body = rt.invoke_endpoint(EndpointName="sls", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read()
    assert body == b"[0]"  # a cold start: a new container answered
    assert len(owned_containers(engine, idle_server.state_dir, endpoint="sls", role="container")) == 1
    sm.delete_endpoint(EndpointName="sls")

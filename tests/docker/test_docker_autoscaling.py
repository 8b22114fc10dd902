"""Autoscaling on the docker runtime: the scaler changes a variant's instance count through the
reconciler, so registering a MinCapacity above the count starts docker instances (pods) and a
MaxCapacity below it stops them — seen in DescribeEndpoint, the activities and the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docker_helpers import owned_containers, wait_for
from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, iris_classifier, package
from servers import Server

pytestmark = pytest.mark.docker

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
RESOURCE = "endpoint/docked/variant/AllTraffic"
WAIT_LIMIT = 240.0  # a hang guard (image pods start in seconds), not a timing


def pods(engine: Any, state_dir: Path) -> set[str]:
    return {c.labels["io.dockyard.instance"] for c in owned_containers(engine, state_dir, endpoint="docked", role="sandbox")
            if c.status == "running"}


def test_capacity_bounds_move_docker_instances(engine: Any, sklearn_image: str, tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", tmp_path / "server.log",
                 {"DOCKYARD_RUNTIME": "docker", "DOCKYARD_AUTOSCALING_PERIOD": "0.5"}).start()
    try:
        sm, rt, aas = srv.client("sagemaker"), srv.client("sagemaker-runtime"), srv.client("application-autoscaling")
        create_endpoint(sm, "docked", {"PrimaryContainer": {
            "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
        assert len(pods(engine, srv.state_dir)) == 1

        def count() -> int | None:
            ep = sm.describe_endpoint(EndpointName="docked")
            return ep["ProductionVariants"][0]["CurrentInstanceCount"] if ep["EndpointStatus"] == "InService" else None

        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION,
                                     MinCapacity=2, MaxCapacity=3)
        wait_for(lambda: count() == 2, WAIT_LIMIT, "two instances")
        assert len(pods(engine, srv.state_dir)) == 2
        assert rt.invoke_endpoint(EndpointName="docked", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")[
            "Body"].read() == b"[0]"
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION,
                                     MinCapacity=1, MaxCapacity=1)
        wait_for(lambda: count() == 1 and len(pods(engine, srv.state_dir)) == 1, WAIT_LIMIT, "one instance")
        causes = [(a["Description"], a["Cause"]) for a in aas.describe_scaling_activities(
            ServiceNamespace="sagemaker", ResourceId=RESOURCE)["ScalingActivities"]]
        assert causes == [("Setting desired instance count to 1.", "maximum capacity was set to 1"),
                          ("Setting desired instance count to 2.", "minimum capacity was set to 2")]
        delete_all(sm, "docked")
    finally:
        srv.stop()

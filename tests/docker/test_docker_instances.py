"""An instance on the docker runtime: the instance type's CPU and memory as cgroup limits, the
container contract's environment, the pod-like shared network, and what the table of instance
types covers."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.exceptions import ClientError
from docker_helpers import owned_containers, wait_for
from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package

from dockyard.runtime.docker_labels import INSTANCE
from dockyard.runtime.instance_types import GIB, resources_for

INSTANCE_TYPES = botocore.session.get_session().get_service_model("sagemaker").shape_for(
    "ProductionVariantInstanceType").enum


def test_every_sagemaker_instance_type_has_a_size():
    assert [t for t in INSTANCE_TYPES if resources_for(t) is None] == []
    sizes = {t: (r.vcpus, r.memory_gib) for t in ("ml.m5.large", "ml.c5.xlarge", "ml.r5.2xlarge", "ml.c4.8xlarge",
                                                  "ml.t2.medium") if (r := resources_for(t))}
    assert sizes == {"ml.m5.large": (2, 8), "ml.c5.xlarge": (4, 8), "ml.r5.2xlarge": (8, 64), "ml.c4.8xlarge": (36, 60),
                     "ml.t2.medium": (2, 4)}


@pytest.mark.parametrize(("instance_type", "size"), [
    ("ml.g7.2xlarge", (8, 32)),  # a family botocore lists since 2026: GPU-class, 4 GiB per vCPU
    ("ml.c9i.xlarge", (4, 8)),
    ("ml.r9gd.large", (2, 16)),
    ("ml.m12.24xlarge", (96, 384)),
    ("ml.q1.xlarge", None),  # an unknown class: no size, the runtime runs it without limits
    ("ml.g7.huge", None),
])
def test_families_botocore_adds_later_are_sized_by_their_class(instance_type, size):
    resources = resources_for(instance_type)
    assert (None if resources is None else (resources.vcpus, resources.memory_gib)) == size


def test_an_unknown_instance_type_is_refused_at_create_endpoint_config(sm):
    sm.create_model(ModelName="odd-type", PrimaryContainer={"Image": SKLEARN_URI})
    with pytest.raises(ClientError) as info:
        sm.create_endpoint_config(EndpointConfigName="odd-type", ProductionVariants=[{
            "VariantName": "v", "ModelName": "odd-type", "InitialInstanceCount": 1, "InstanceType": "ml.m5.huge"}])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "ml.m5.huge" in info.value.response["Error"]["Message"]
    sm.delete_model(ModelName="odd-type")


@pytest.mark.docker
def test_inspect_shows_the_instance_types_cpu_and_memory_limits(sm, rt, server, engine, tmp_path):
    tarball = package(tmp_path, iris_classifier())
    create_endpoint(sm, "limits", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri(),
                                                        "Environment": {"TEAM": "ml"}}})
    [model] = owned_containers(engine, server.state_dir, endpoint="limits", role="container")
    host = model.attrs["HostConfig"]
    assert host["NanoCpus"] == 2 * 10**9  # ml.m5.large: 2 vCPUs
    assert host["Memory"] == 8 * GIB  # and 8 GiB
    assert host["NetworkMode"].startswith("container:")
    assert model.attrs["Config"]["Cmd"] == ["serve"]  # SageMaker: docker run <image> serve
    env = dict(e.split("=", 1) for e in model.attrs["Config"]["Env"])
    assert env["SAGEMAKER_BIND_TO_PORT"] == "8080"  # alone: 8080, as on SageMaker
    assert env["TEAM"] == "ml"
    assert [(m["Destination"], m["RW"]) for m in model.attrs["Mounts"]] == [("/opt/ml/model", False)]
    assert model.labels["io.dockyard.hostname"] == "primary"
    assert model.labels["io.dockyard.instance-type"] == "ml.m5.large"
    sm.delete_endpoint(EndpointName="limits")


@pytest.mark.docker
def test_cpus_beyond_the_host_are_capped_at_the_host(sm, server, engine, tmp_path):
    tarball = package(tmp_path, iris_classifier())
    create_endpoint(sm, "big", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}},
                    InstanceType="ml.c5.9xlarge")
    [model] = owned_containers(engine, server.state_dir, endpoint="big", role="container")
    host_cpus = engine.info()["NCPU"]
    assert model.attrs["HostConfig"]["NanoCpus"] == min(36, host_cpus) * 10**9
    assert model.attrs["HostConfig"]["Memory"] == 72 * GIB
    sm.delete_endpoint(EndpointName="big")


@pytest.mark.docker
def test_a_container_killed_behind_dockyards_back_is_replaced(sm, rt, server, engine, tmp_path):
    tarball = package(tmp_path, iris_classifier())
    create_endpoint(sm, "phoenix", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    [old] = owned_containers(engine, server.state_dir, endpoint="phoenix", role="container")
    old.kill()

    def replaced() -> bool:
        try:
            rt.invoke_endpoint(EndpointName="phoenix", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")
        except ClientError:  # 503 until the new instance passes /ping
            return False
        return any(c.id != old.id for c in owned_containers(engine, server.state_dir, endpoint="phoenix", role="container"))

    wait_for(replaced, 30, "a new instance of phoenix")
    # The engine's die event reported the exit (the periodic check would not say how it ended).
    assert f"container(s) primary of instance {old.labels[INSTANCE]} exited with code 137 (SIGKILL); taking it " \
           "out of rotation" in server.log()
    # The dead instance goes, sandbox and all, once its replacement serves: one instance, two containers.
    wait_for(lambda: len(owned_containers(engine, server.state_dir, endpoint="phoenix")) == 2, 30,
             "the dead instance of phoenix to be removed")
    sm.delete_endpoint(EndpointName="phoenix")

"""``dockyard serve --runtime ray`` against a real local Ray cluster (a head and two workers, see
ray_cluster.py), driven with boto3: instances placed across nodes answer real scikit-learn
predictions; a family pinned to a node by its custom resource lands there; autoscaling adds and
removes placement groups; a worker SIGKILLed
under load has its instances replaced on the nodes left; a deployment no node can hold fails with
SageMaker's capacity wording; a delete gives the placement groups back.

Nodes (logical sizes; ml.c5.large takes 2 CPUs and 4 GiB): head 1 slot, w1 and w2 2 slots each,
so three instances always span at least two nodes, and the survivors of any worker's loss still
have room for all three.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from e2e.deploy import FAST_WAIT, create_endpoint, delete_all, invoke_until_answered, wait_settled
from e2e.models import SKLEARN_URI, iris, iris_classifier, package
from e2e.test_crash import DYING_INFERENCE
from needs import require_ray
from servers import Server

from dockyard.cli.client import get_json

pytestmark = pytest.mark.ray
require_ray()

from ray_cluster import Cluster, start_cluster  # noqa: E402  (after the skip: it needs nothing, but reads as Ray's)

ROWS = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("ray"))
    try:
        c.start_node("head", cpus=2, memory_gib=4)
        c.start_node("w1", cpus=4, memory_gib=8)
        c.start_node("w2", cpus=4, memory_gib=8, resources={"ml.c6i": 2})
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ray-server")
    s = Server(tmp / "state", tmp / "server.log", {"DOCKYARD_RAY_CAPACITY_TIMEOUT": "3", "DOCKYARD_HEALTH_INTERVAL": "0.5",
                                                   "DOCKYARD_RESTART_BACKOFF_MAX": "2", "DOCKYARD_AUTOSCALING_PERIOD": "0.5"},
               args=("--runtime", "ray", "--ray-address", cluster.address))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"file://{package(tmp_path_factory.mktemp('model'), iris_classifier())}"


def nodes_of(server: Server, name: str) -> dict[str, str]:
    """Instance id → the node `dockyard stats` reports it on."""
    rows = get_json(server.url, f"/_dockyard/endpoints/{name}/stats")["containers"]
    return {row["instance"]: row["node"] for row in rows}


def node_id(node: str) -> str:
    """The node id prefix in a reported node, "<address> (<id prefix>)"."""
    return node.rsplit("(", 1)[1].rstrip(")")


def live_groups(name: str) -> list[dict[str, Any]]:
    """Ray's placement groups of endpoint ``name`` that are not removed."""
    import ray

    return [g for g in ray.util.placement_group_table().values()
            if g["name"].startswith(f"{name}-") and g["state"] != "REMOVED"]


def expected() -> list[int]:
    """The classifier's own predictions for ROWS (the managed server answers a JSON list)."""
    x, _ = iris()
    return [int(p) for p in iris_classifier().predict(x[[0, 100]])]


def predict(rt: Any, name: str) -> list[int]:
    return json.loads(rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=ROWS)["Body"].read())


def test_a_family_pinned_by_a_custom_resource_runs_on_its_node(cluster: Cluster, server: Server, model_data: str) -> None:
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    create_endpoint(sm, "pinned", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data}},
                    InstanceType="ml.c6i.large")
    [node] = nodes_of(server, "pinned").values()
    assert cluster.node_id("w2").startswith(node_id(node))
    assert predict(rt, "pinned") == expected() == [0, 2]
    assert len(live_groups("pinned")) == 1
    delete_all(sm, "pinned")
    assert live_groups("pinned") == []


def test_autoscaling_places_and_releases_instances_on_the_cluster(server: Server, model_data: str) -> None:
    """The scaler moves a Ray endpoint's instance count as on any runtime: load above the target
    adds an instance (a placement group more on the cluster), quiet takes it away again."""
    sm, rt, aas = server.client("sagemaker"), server.client("sagemaker-runtime"), server.client("application-autoscaling")
    create_endpoint(sm, "scaled", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data}},
                    InstanceType="ml.c5.large")
    target = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/scaled/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    aas.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    aas.put_scaling_policy(PolicyName="invocations", PolicyType="TargetTrackingScaling", **target,
                           TargetTrackingScalingPolicyConfiguration={
                               "TargetValue": 300.0, "ScaleOutCooldown": 1, "ScaleInCooldown": 2,
                               "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    assert len(live_groups("scaled")) == 1

    def count() -> int:
        ep = sm.describe_endpoint(EndpointName="scaled")
        return ep["ProductionVariants"][0]["CurrentInstanceCount"] if ep["EndpointStatus"] == "InService" else 0

    answers: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 120  # bounded, whatever happens to the test
        while not stop.is_set() and time.monotonic() < deadline:
            answers["right" if predict(rt, "scaled") == expected() else "wrong"] += 1

    loader = threading.Thread(target=load)
    loader.start()
    try:
        deadline = time.monotonic() + 120  # a hang guard, not a timing
        while count() != 2:
            assert time.monotonic() < deadline, f"no scale-out; log:\n{server.log()[-3000:]}"
            time.sleep(0.2)
    finally:
        stop.set()
        loader.join()
    assert answers["right"] > 0 and answers["wrong"] == 0
    assert len(nodes_of(server, "scaled")) == 2 and len(live_groups("scaled")) == 2

    deadline = time.monotonic() + 120
    while count() != 1:
        assert time.monotonic() < deadline, f"no scale-in; log:\n{server.log()[-3000:]}"
        time.sleep(0.2)
    assert len(nodes_of(server, "scaled")) == 1 and len(live_groups("scaled")) == 1
    activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=target["ResourceId"])
    assert [a["Description"] for a in activities["ScalingActivities"]] == [
        "Setting desired instance count to 1.", "Setting desired instance count to 2."]
    delete_all(sm, "scaled")
    assert live_groups("scaled") == []


def test_a_lost_worker_s_instances_serve_again_elsewhere(cluster: Cluster, server: Server, model_data: str) -> None:
    sm = server.client("sagemaker")
    rt = server.client("sagemaker-runtime", retries={"max_attempts": 0}, read_timeout=30)
    create_endpoint(sm, "spread", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data}},
                    InstanceType="ml.c5.large", InitialInstanceCount=3)
    placed = nodes_of(server, "spread")
    assert len(placed) == 3
    workers = {name: cluster.node_id(name) for name in ("head", "w1", "w2")}
    by_node = Counter(next(n for n, i in workers.items() if i.startswith(node_id(node))) for node in placed.values())
    assert len(by_node) >= 2 and max(by_node.values()) <= 2, by_node
    for _ in range(6):
        assert predict(rt, "spread") == expected()

    victim = max((n for n in by_node if n != "head"), key=lambda n: by_node[n])
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                outcomes["ok" if predict(rt, "spread") == expected() else "wrong"] += 1
            except ClientError as exc:
                outcomes[exc.response["Error"]["Code"]] += 1
                time.sleep(0.05)
            except ReadTimeoutError:
                outcomes["hung"] += 1

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(1)
        cluster.nodes[[n.name for n in cluster.nodes].index(victim)].kill()
        lost = workers[victim]
        deadline = time.monotonic() + 90
        while True:
            now = nodes_of(server, "spread")
            if len(now) == 3 and not any(lost.startswith(node_id(n)) for n in now.values()):
                break
            assert time.monotonic() < deadline, f"not replaced: {now}; log:\n{server.log()[-3000:]}"
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop.set()
        loader.join()
    print(f"invocations while {victim} was lost: {dict(outcomes)}")
    assert outcomes["ok"] > 0 and outcomes["wrong"] == 0 and outcomes["hung"] == 0
    # Meanwhile a request went to another instance, or was answered 503 (or 424 when its container died mid-request).
    assert set(outcomes) <= {"ok", "ServiceUnavailable", "ModelError"}, outcomes
    assert sm.describe_endpoint(EndpointName="spread")["EndpointStatus"] == "InService"
    assert len(live_groups("spread")) == 3
    readiness = get_json(server.url, "/_dockyard/endpoints")["endpoints"]["spread"]["AllTraffic"]
    assert sorted(readiness["nodes"]) == sorted(nodes_of(server, "spread").values())

    # Scaling in gives the placement groups of the instances it stops back.
    sm.update_endpoint_weights_and_capacities(EndpointName="spread", DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 1}])
    sm.get_waiter("endpoint_in_service").wait(EndpointName="spread", WaiterConfig=FAST_WAIT)
    assert len(nodes_of(server, "spread")) == 1
    assert len(live_groups("spread")) == 1
    assert predict(rt, "spread") == expected()
    delete_all(sm, "spread")
    assert live_groups("spread") == []


def test_a_container_that_crashes_on_a_node_is_model_error_then_replaced(server: Server, tmp_path: Path) -> None:
    """A container's own exit on a node (not the node's loss): the request that crashed it answers
    ModelError and is not sent to another instance; the actor's report replaces the instance."""
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime", retries={"max_attempts": 0})
    data = package(tmp_path, iris_classifier(), DYING_INFERENCE).as_uri()
    create_endpoint(sm, "ray-crash", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": data}},
                    InstanceType="ml.c5.large", InitialInstanceCount=2)
    try:
        before = set(nodes_of(server, "ray-crash"))
        with pytest.raises(ClientError) as info:
            rt.invoke_endpoint(EndpointName="ray-crash", ContentType="text/csv", Body="-1,3.5,1.4,0.2")
        assert info.value.response["Error"]["Code"] == "ModelError"
        # Exactly one instance replaced: the other one never saw the request that crashed this one.
        deadline = time.monotonic() + 120
        while len(before & set(nodes_of(server, "ray-crash"))) != 1 or len(nodes_of(server, "ray-crash")) != 2:
            assert time.monotonic() < deadline, "the crashed instance was not replaced"
            time.sleep(0.2)
        (dead,) = before - set(nodes_of(server, "ray-crash"))
        assert f"container(s) primary of instance {dead} exited on Ray node" in server.log()
        assert invoke_until_answered(rt, "ray-crash", "5.1,3.5,1.4,0.2").strip() == b"[0]"
    finally:
        delete_all(sm, "ray-crash")


def test_a_deployment_no_node_can_hold_fails_for_capacity(server: Server, model_data: str) -> None:
    sm = server.client("sagemaker")
    create_endpoint(sm, "too-big", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data}},
                    wait=False, InstanceType="ml.c5.9xlarge")
    desc = wait_settled(sm, "too-big")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("Unable to provision requested ML compute capacity due to "
                                            "InsufficientInstanceCapacity error."), desc["FailureReason"]
    assert "36 CPUs" in desc["FailureReason"]
    assert live_groups("too-big") == []
    sm.delete_endpoint(EndpointName="too-big")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="too-big", WaiterConfig=FAST_WAIT)


def test_model_data_missing_on_the_node_says_where_it_was_looked_for(server: Server, tmp_path: Path) -> None:
    sm = server.client("sagemaker")
    missing = tmp_path / "nowhere" / "model.tar.gz"
    create_endpoint(sm, "no-data", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": f"file://{missing}"}},
                    wait=False, InstanceType="ml.c5.large")
    desc = wait_settled(sm, "no-data")
    assert desc["EndpointStatus"] == "Failed"
    assert "fetched on Ray node" in desc["FailureReason"] and "must exist on that node" in desc["FailureReason"]
    assert live_groups("no-data") == []


def test_a_killed_server_s_instances_end_with_it_and_its_successor_starts_them_again(
        cluster: Cluster, model_data: str, tmp_path: Path) -> None:
    """Actors and placement groups belong to the server's Ray job: SIGKILL the server and Ray
    removes them; a server restarted on the same state directory brings the endpoint back."""
    first = Server(tmp_path / "state", tmp_path / "first.log", args=("--runtime", "ray", "--ray-address", cluster.address))
    first.start()
    create_endpoint(first.client("sagemaker"), "outlives", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data}},
                    InstanceType="ml.c5.large")
    assert len(live_groups("outlives")) == 1
    first.proc.kill()
    first.proc.wait()
    deadline = time.monotonic() + 60
    while live_groups("outlives"):
        assert time.monotonic() < deadline, "Ray kept the killed server's placement group"
        time.sleep(0.2)
    second = Server(tmp_path / "state", tmp_path / "second.log", args=("--runtime", "ray", "--ray-address", cluster.address))
    second.start()
    try:
        assert json.loads(invoke_until_answered(second.client("sagemaker-runtime"), "outlives", ROWS)) == expected()
        assert len(live_groups("outlives")) == 1
        delete_all(second.client("sagemaker"), "outlives")
        assert live_groups("outlives") == []
    finally:
        second.stop()


@pytest.mark.docker
def test_docker_containers_run_on_the_node_s_engine(cluster: Cluster, model_data: str, engine: Any, sklearn_image: str,
                                                    tmp_path: Path) -> None:
    """--ray-containers docker: the actor runs the managed image in the node's engine (one engine
    for every node here), published on the node's address."""
    s = Server(tmp_path / "state", tmp_path / "server.log",
               args=("--runtime", "ray", "--ray-address", cluster.address, "--ray-containers", "docker")).start()
    try:
        sm, rt = s.client("sagemaker"), s.client("sagemaker-runtime")
        create_endpoint(sm, "in-docker", {"PrimaryContainer": {"Image": sklearn_image, "ModelDataUrl": model_data}},
                        InstanceType="ml.c5.large")
        [node] = nodes_of(s, "in-docker").values()
        assert any(cluster.node_id(n.name).startswith(node_id(node)) for n in cluster.nodes if n.alive())
        assert predict(rt, "in-docker") == expected()
        assert {c.labels["io.dockyard.role"] for c in owned(engine, owner_of(s))} == {"sandbox", "container"}
        delete_all(sm, "in-docker")
        assert live_groups("in-docker") == []
        assert owned(engine, owner_of(s)) == []
    finally:
        s.stop()


def owner_of(server: Server) -> str:
    """The owner label of a Ray server's containers: its host and state directory, unique in a cluster."""
    return f"{socket.gethostname()}:{server.state_dir.resolve()}"


def owned(engine: Any, owner: str, instance: str | None = None) -> list[Any]:
    """The engine's containers (running or not) labelled with ``owner`` (and ``instance``)."""
    labels = [f"io.dockyard.owner={owner}"] + ([f"io.dockyard.instance={instance}"] if instance else [])
    return engine.containers.list(all=True, filters={"label": labels}, ignore_removed=True)


def wait_gone(engine: Any, owner: str, instance: str, server: Server) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing
    while owned(engine, owner, instance):
        assert time.monotonic() < deadline, f"instance {instance}'s containers remain; log:\n{server.log()[-3000:]}"
        time.sleep(0.2)


def replaced(server: Server, name: str, old: str) -> str:
    """The id of the instance that serves ``name`` instead of ``old``, once there is one."""
    deadline = time.monotonic() + 90
    while True:
        now = nodes_of(server, name)
        if len(now) == 1 and old not in now:
            return next(iter(now))
        assert time.monotonic() < deadline, f"{old} not replaced: {now}; log:\n{server.log()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.docker
def test_docker_containers_of_a_dead_actor_or_a_killed_server_are_reaped(
        cluster: Cluster, model_data: str, engine: Any, sklearn_image: str, tmp_path: Path) -> None:
    """--ray-containers docker: the containers are the engine's, not the actor's children, so they
    outlive a SIGKILLed actor (or server). The replacement's stop of the dead instance removes
    them on their node, a restarted server removes its predecessor's, a graceful stop leaves none;
    a container labelled with another owner is never touched, and stopping one instance leaves the
    others' containers alone."""
    import ray._private.state

    args = ("--runtime", "ray", "--ray-address", cluster.address, "--ray-containers", "docker")
    env = {"DOCKYARD_HEALTH_INTERVAL": "0.5", "DOCKYARD_RESTART_BACKOFF_MAX": "2"}
    s = Server(tmp_path / "state", tmp_path / "first.log", env, args=args).start()
    second: Server | None = None
    foreign = None
    try:
        sm, rt = s.client("sagemaker"), s.client("sagemaker-runtime")
        create_endpoint(sm, "reaped", {"PrimaryContainer": {"Image": sklearn_image, "ModelDataUrl": model_data}},
                        InstanceType="ml.c5.large")
        [old] = nodes_of(s, "reaped")
        owner = owner_of(s)
        assert {c.labels["io.dockyard.role"] for c in owned(engine, owner, old)} == {"sandbox", "container"}
        # Another server's container, even one with the same instance label, must survive every reaping.
        foreign = engine.containers.run(sklearn_image, entrypoint=["sleep", "infinity"], command=[], detach=True,
                                        labels={"io.dockyard.owner": f"{owner}-elsewhere", "io.dockyard.role": "sandbox",
                                                "io.dockyard.instance": old})

        [pid] = [a["Pid"] for a in ray._private.state.actors().values() if a["Name"] == old and a["State"] == "ALIVE"]
        os.kill(pid, signal.SIGKILL)
        new = replaced(s, "reaped", old)
        assert predict(rt, "reaped") == expected()
        wait_gone(engine, owner, old, s)
        assert {c.labels["io.dockyard.role"] for c in owned(engine, owner, new)} == {"sandbox", "container"}

        # An update stops the old instance after the new one serves: only the old one's containers go.
        sm.create_model(ModelName="reaped-2", ExecutionRoleArn="arn:aws:iam::123456789012:role/test", PrimaryContainer={
            "Image": sklearn_image, "ModelDataUrl": model_data, "Environment": {"SECOND": "1"}})
        sm.create_endpoint_config(EndpointConfigName="reaped-2", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "reaped-2", "InstanceType": "ml.c5.large", "InitialInstanceCount": 1}])
        sm.update_endpoint(EndpointName="reaped", EndpointConfigName="reaped-2")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="reaped", WaiterConfig=FAST_WAIT)
        serving = nodes_of(s, "reaped")
        assert len(serving) == 1 and new not in serving, f"the new instance died: {serving}; log:\n{s.log()[-3000:]}"
        [newer] = serving
        assert predict(rt, "reaped") == expected()
        assert {c.labels["io.dockyard.role"] for c in owned(engine, owner, newer)} == {"sandbox", "container"}

        # A SIGKILLed server's actors end with its Ray job; its containers stay, until its successor starts.
        s.proc.kill()
        s.proc.wait()
        second = Server(tmp_path / "state", tmp_path / "second.log", env, args=args).start()
        assert json.loads(invoke_until_answered(second.client("sagemaker-runtime"), "reaped", ROWS)) == expected()
        wait_gone(engine, owner, newer, second)
        second.stop()
        assert owned(engine, owner) == []
        foreign.reload()
        assert foreign.status == "running"
    finally:
        s.stop()
        if second is not None:
            second.stop()
        if foreign is not None:
            foreign.remove(force=True)

"""Nothing outlives its endpoint or its server, and a state dir has one server: a DeleteEndpoint
during Creating leaves no container process behind; a server stopped with SIGTERM stops every
instance and exits cleanly; a second server on a state dir in use exits at once, naming the
first, without touching its containers."""

from __future__ import annotations

import time

from servers import Server

from dockyard.cli.embedded import start_server
from dockyard.runtime.ports import free_port
from dockyard.runtime.processes import owned_pids
from e2e.deploy import FAST_WAIT, container_pids, create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package


def test_a_second_server_on_the_same_state_dir_exits_naming_the_first(tmp_path):
    first = Server(tmp_path / "state", tmp_path / "a.log").start()
    owner = str((tmp_path / "state").resolve())
    try:
        sm = first.client("sagemaker")
        tarball = package(tmp_path, iris_classifier())
        create_endpoint(sm, "kept", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
        pids = owned_pids(owner)

        second = start_server(tmp_path / "state", free_port(), tmp_path / "b.log")
        assert second.wait(60) != 0
        lines = (tmp_path / "b.log").read_text().strip().splitlines()
        assert lines[-1] == (
            f"dockyard serve: state dir {tmp_path / 'state'} is in use by the dockyard server with PID "
            f"{first.proc.pid} at http://127.0.0.1:{first.port}; stop it or pass another --state-dir."
        )
        assert owned_pids(owner) == pids  # nothing of the first server's was swept
        rt = first.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"})
        body = rt.invoke_endpoint(EndpointName="kept", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read()
        assert body.strip() in (b"[0]", b"[0.0]")
    finally:
        first.stop()


def test_delete_during_create_leaves_no_container_running(tmp_path):
    srv = Server(tmp_path / "state", tmp_path / "server.log").start()
    owner = str((tmp_path / "state").resolve())
    try:
        sm = srv.client("sagemaker")
        tarball = package(tmp_path, iris_classifier())
        sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                        PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()})
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}])
        for round in range(20):
            name = f"churn-{round}"
            sm.create_endpoint(EndpointName=name, EndpointConfigName="c")
            time.sleep(0.05 + 0.075 * round)  # 0.05 s to 1.5 s: every stage of a start
            sm.delete_endpoint(EndpointName=name)
        for round in range(20):
            sm.get_waiter("endpoint_deleted").wait(EndpointName=f"churn-{round}", WaiterConfig=FAST_WAIT)
        assert container_pids(owner) == set()
        assert list((tmp_path / "state" / "instances").iterdir()) == []
    finally:
        srv.stop()


def test_sigterm_stops_every_instance_and_exits_cleanly(tmp_path):
    srv = Server(tmp_path / "state", tmp_path / "server.log").start()
    owner = str((tmp_path / "state").resolve())
    try:
        sm = srv.client("sagemaker")
        tarball = package(tmp_path, iris_classifier())
        create_endpoint(sm, "many", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}},
                        InitialInstanceCount=4)
        assert len(owned_pids(owner)) >= 4
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    assert owned_pids(owner) == []
    log = srv.log()
    assert "Task exception was never retrieved" not in log and "Traceback" not in log, log[-3000:]

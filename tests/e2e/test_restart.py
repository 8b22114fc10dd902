"""A server killed with SIGKILL leaves no container processes behind, and on restart with the
same state dir every InService endpoint comes back by itself."""

from __future__ import annotations

from servers import Server

from dockyard.runtime.processes import owned_pids
from e2e.deploy import FAST_WAIT, create_endpoint, sigkill_server
from e2e.models import SKLEARN_URI, iris_classifier, package


def test_sigkill_then_restart_brings_endpoints_back(tmp_path):
    srv = Server(tmp_path / "state", tmp_path / "server.log").start()
    owner = str((tmp_path / "state").resolve())
    try:
        sm = srv.client("sagemaker")
        tarball = package(tmp_path, iris_classifier())
        create_endpoint(sm, "survivor", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
        assert owned_pids(owner), "the endpoint's container should be running"

        assert sigkill_server(srv, owner) == [], "container processes outlived the server"

        srv.start()
        sm = srv.client("sagemaker")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="survivor", WaiterConfig=FAST_WAIT)
        # While the instance comes back, invocations get 503, which boto3 retries (a budget that
        # outlasts a model server's start on a busy machine).
        rt = srv.client("sagemaker-runtime", retries={"max_attempts": 10, "mode": "standard"})
        body = rt.invoke_endpoint(EndpointName="survivor", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read()
        assert body.strip() in (b"[0]", b"[0.0]")
    finally:
        srv.stop()
    assert owned_pids(owner) == [], "a graceful stop must stop every container"

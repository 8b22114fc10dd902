"""Kill the server with SIGKILL: its containers outlive it (they belong to the engine). Restart it
with the same state directory: an instance still whole and healthy is adopted (same containers,
not replaced), a broken one is removed and replaced, every InService endpoint comes back, and no
container is duplicated or orphaned; a graceful stop then leaves none."""

from __future__ import annotations

import os
import signal

import pytest
from botocore.exceptions import ClientError
from docker_helpers import owned_containers, wait_for
from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package
from servers import Server

pytestmark = pytest.mark.docker


def instances(engine, state_dir) -> dict[str, set[str]]:
    """Running containers by instance id: {instance: {roles}}."""
    found: dict[str, set[str]] = {}
    for c in owned_containers(engine, state_dir):
        assert c.status == "running", f"{c.name} is {c.status}"
        found.setdefault(c.labels["io.dockyard.instance"], set()).add(c.labels["io.dockyard.role"])
    return found


def test_sigkill_then_restart_leaves_exactly_the_endpoints_containers(engine, sklearn_image, tmp_path):
    state = tmp_path / "state"
    srv = Server(state, tmp_path / "server.log", {"DOCKYARD_RUNTIME": "docker"}).start()
    try:
        sm = srv.client("sagemaker")
        tarball = package(tmp_path, iris_classifier())
        for name in ("survivor-a", "survivor-b"):
            create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
        before = instances(engine, state)
        assert list(before.values()) == [{"sandbox", "container"}] * 2

        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()
        assert instances(engine, state) == before  # the engine keeps them running
        # While no server runs, survivor-b's model container dies: its instance is no longer whole.
        (broken,) = owned_containers(engine, state, endpoint="survivor-b", role="container")
        broken_instance = broken.labels["io.dockyard.instance"]
        broken.kill()

        srv.start()
        rt = srv.client("sagemaker-runtime", retries={"max_attempts": 1})

        def answers(name: str) -> bytes | None:
            try:
                return rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read()
            except ClientError:  # 503 while the instance comes back
                return None

        for name in ("survivor-a", "survivor-b"):
            assert wait_for(lambda name=name: answers(name), 60, f"{name} to answer again").strip() in (b"[0]", b"[0.0]")
            assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
        after = wait_for(lambda: (found := instances(engine, state)) and len(found) == 2 and found, 30,
                         "exactly one instance per endpoint")
        assert all(roles == {"sandbox", "container"} for roles in after.values())
        adopted = set(before) - {broken_instance}
        assert adopted <= set(after), "the healthy instance should have been adopted, not replaced"
        assert broken_instance not in after, "the broken instance should have been replaced"
        # A delete still in progress when the server stops is finished before it exits.
        sm.delete_endpoint(EndpointName="survivor-a")
    finally:
        srv.stop()
    assert owned_containers(engine, state) == [], "a graceful stop must remove every container"

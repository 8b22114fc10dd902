"""A container that dies: the invocation in flight gets ModelError (never a 5xx boto3 would retry),
and the reconciler replaces the instance so the endpoint answers again by itself — at once, as the
runtime reports the exit, not at the next health check."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from servers import Server

from e2e.deploy import container_pids, create_endpoint, delete_all, endpoint_stats, instance_ids, invoke_until_answered
from e2e.models import SKLEARN_URI, iris_classifier, package
from e2e.test_cli_commands import dockyard
from e2e.test_multi_model import code_model, create_mme, invoke, named_model

DYING_INFERENCE = """
    import os
    import signal

    def predict_fn(data, model):
        if data[0][0] < 0:  # a request that crashes the whole container
            os.killpg(os.getpgrp(), signal.SIGKILL)
        return model.predict(data)
"""


def test_crashing_container_is_model_error_then_replaced(server, sm, rt, tmp_path):
    before = container_pids(str(server.state_dir.resolve()))
    log_start = len(server.log())  # the server is shared: only what this test made it log counts
    create_endpoint(sm, "crashy", {"PrimaryContainer": {"Image": SKLEARN_URI,
                                                        "ModelDataUrl": package(tmp_path, iris_classifier(), DYING_INFERENCE).as_uri()}})
    assert rt.invoke_endpoint(EndpointName="crashy", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read()
    mine = container_pids(str(server.state_dir.resolve())) - before
    assert mine

    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName="crashy", ContentType="text/csv", Body="-1,3.5,1.4,0.2")
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "from primary" in err["Error"]["Message"]

    # The reconciler notices the exit and starts a new instance; the endpoint stays InService.
    body = invoke_until_answered(rt, "crashy", "5.1,3.5,1.4,0.2")
    assert body.strip() == b"[0]"
    assert sm.describe_endpoint(EndpointName="crashy")["EndpointStatus"] == "InService"
    assert not any(pid in container_pids(str(server.state_dir.resolve())) for pid in mine)
    assert "Error handling request" not in server.log()[log_start:]
    sm.delete_endpoint(EndpointName="crashy")


def test_a_dead_instance_is_failed_over_at_once(server, sm, rt, tmp_path):
    """Issue 12 §4: with two instances, the one whose containers died refuses connections; every
    invocation after the crash is answered by the other one — none is a 424 from the dead one
    while the reconciler replaces it."""
    model = {"PrimaryContainer": {"Image": SKLEARN_URI,
                                  "ModelDataUrl": package(tmp_path, iris_classifier(), DYING_INFERENCE).as_uri()}}
    create_endpoint(sm, "failover", model, InitialInstanceCount=2)
    with pytest.raises(ClientError) as info:  # the request in flight when its instance dies
        rt.invoke_endpoint(EndpointName="failover", ContentType="text/csv", Body="-1,3.5,1.4,0.2")
    assert info.value.response["Error"]["Code"] == "ModelError"

    answers = [rt.invoke_endpoint(EndpointName="failover", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")
               ["Body"].read().strip() for _ in range(10)]
    assert answers == [b"[0]"] * 10
    sm.delete_endpoint(EndpointName="failover")


@pytest.fixture(scope="module")
def rare_checks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that looks for dead containers only once an hour: what brings an instance back
    sooner is the runtime reporting the exit."""
    root = tmp_path_factory.mktemp("rare-checks")
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_HEALTH_INTERVAL": "3600"}).start()
    yield srv
    srv.stop()


def _replaced(server: Server, endpoint: str, dead: str, timeout: float = 60.0) -> str:
    """The instance that replaced ``dead``, waiting without invoking (a refused invocation would
    ring the reconciler by itself)."""
    deadline = time.monotonic() + timeout
    while (now := instance_ids(server, endpoint)) in (set(), {dead}):
        assert time.monotonic() < deadline, f"instance {dead} of {endpoint} was not replaced"
        time.sleep(0.1)
    (alive,) = now
    return alive


def test_a_crashed_container_is_replaced_before_the_next_health_check(rare_checks: Server, tmp_path: Path) -> None:
    sm, rt = rare_checks.client("sagemaker"), rare_checks.client("sagemaker-runtime", retries={"max_attempts": 1})
    create_endpoint(sm, "crash-now", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier(), DYING_INFERENCE).as_uri()}})
    try:
        (dead,) = instance_ids(rare_checks, "crash-now")
        with pytest.raises(ClientError) as info:
            rt.invoke_endpoint(EndpointName="crash-now", ContentType="text/csv", Body="-1,3.5,1.4,0.2")
        assert info.value.response["Error"]["Code"] == "ModelError"

        alive = _replaced(rare_checks, "crash-now", dead)
        assert invoke_until_answered(rt, "crash-now", "5.1,3.5,1.4,0.2").strip() == b"[0]"
        ep = sm.describe_endpoint(EndpointName="crash-now")
        assert ep["EndpointStatus"] == "InService"
        # What happened, in DescribeEndpoint, the server's log and the dead container's own log.
        what = f"container(s) primary of instance {dead} was killed by SIGKILL"
        assert what in ep["FailureReason"] and ep["FailureReason"].startswith("Instance replaced (")
        assert f"{what}; taking it out of rotation" in rare_checks.log()
        with urllib.request.urlopen(f"{rare_checks.url}/_dockyard/endpoints/crash-now/logs?lines=5", timeout=10) as resp:
            logs = {entry["instance"]: entry["lines"] for entry in json.load(resp)["logs"]}
        assert logs[dead][-1] == f"[dockyard] {what}; dockyard replaces the instance"
        out = dockyard("endpoints", url=rare_checks.url, columns=400)
        assert out.returncode == 0 and what in out.stdout, out.stdout
        assert alive != dead
    finally:
        delete_all(sm, "crash-now")


def test_a_crashed_multi_model_container_is_replaced_and_loads_its_models_again(
        rare_checks: Server, tmp_path: Path) -> None:
    sm, rt = rare_checks.client("sagemaker"), rare_checks.client("sagemaker-runtime", retries={"max_attempts": 1})
    prefix = tmp_path / "models"
    prefix.mkdir()
    named_model(prefix, "a.tar.gz", "a")
    code_model(prefix, "dying.tar.gz", DYING_INFERENCE)
    name = create_mme(sm, "mme-crash-now", prefix)
    try:
        assert invoke(rt, name, "a.tar.gz") == {"model": "a", "rows": 2}
        (dead,) = instance_ids(rare_checks, name)
        with pytest.raises(ClientError) as info:
            invoke(rt, name, "dying.tar.gz", body="-1,3.5,1.4,0.2")
        assert info.value.response["Error"]["Code"] == "ModelError"

        alive = _replaced(rare_checks, name, dead)
        # Loaded again on the replacement (never a 404 "not loaded" from a stale entry).
        assert json.loads(invoke_until_answered(rt, name, "5.1,3.5,1.4,0.2", TargetModel="a.tar.gz")) == \
            {"model": "a", "rows": 1}
        models = endpoint_stats(rare_checks, name)["models"]
        assert [(m["instance"], m["model"], m["loaded"], m["misses"]) for m in models] == [(alive, "a.tar.gz", True, 1)]
    finally:
        delete_all(sm, name)

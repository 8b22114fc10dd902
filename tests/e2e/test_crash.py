"""A container that dies: the invocation in flight gets ModelError (never a 5xx boto3 would retry),
and the reconciler replaces the instance so the endpoint answers again by itself."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import container_pids, create_endpoint, invoke_until_answered
from e2e.models import SKLEARN_URI, iris_classifier, package

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

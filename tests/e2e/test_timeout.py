"""A container slower than the invocation timeout becomes ModelError, on a server whose
timeout is set short through DOCKYARD_INVOCATION_TIMEOUT."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from servers import Server

from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package

SLOW_INFERENCE = """
    import time

    def predict_fn(data, model):
        time.sleep(float(data[0][0]))
        return model.predict(data)
"""


@pytest.fixture(scope="module")
def short_timeout_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeout")
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_INVOCATION_TIMEOUT": "1.5"}).start()
    yield srv
    srv.stop()


def test_slow_container_times_out_as_model_error(short_timeout_server, tmp_path):
    sm = short_timeout_server.client("sagemaker")
    rt = short_timeout_server.client("sagemaker-runtime")
    tarball = package(tmp_path, iris_classifier(), SLOW_INFERENCE)
    create_endpoint(sm, "slow", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    assert rt.invoke_endpoint(EndpointName="slow", ContentType="text/csv", Body="0.01,1,1,1")["Body"].read()
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName="slow", ContentType="text/csv", Body="4,1,1,1")
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["OriginalStatusCode"] == 0
    assert "timed out while waiting for a response from container primary" in err["Error"]["Message"]

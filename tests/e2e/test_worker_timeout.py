"""A prediction past SAGEMAKER_MODEL_SERVER_TIMEOUT gets its worker killed and replaced by the
managed model server: on a default one-worker endpoint the next request is served again."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package

HANGING_INFERENCE = """
    import threading

    def predict_fn(data, model):
        if data[0][0] < 0:
            threading.Event().wait()  # forever
        return model.predict(data)
"""


def test_a_hanging_prediction_does_not_break_a_one_worker_endpoint(sm, rt, tmp_path):
    tarball = package(tmp_path, iris_classifier(), HANGING_INFERENCE)
    # The server's invocation timeout (60 s) is above the model server's own.
    container = {
        "Image": SKLEARN_URI,
        "ModelDataUrl": tarball.as_uri(),
        "Environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"},
    }
    create_endpoint(sm, "hangs-once", {"PrimaryContainer": container})
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName="hangs-once", ContentType="text/csv", Body="-1,1,1,1")
    error = info.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "did not finish within 2 s (SAGEMAKER_MODEL_SERVER_TIMEOUT)" in error["OriginalMessage"]
    for _ in range(3):
        reply = rt.invoke_endpoint(EndpointName="hangs-once", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")
        assert reply["Body"].read().decode().strip() == "[0]"

"""Response streaming on the docker runtime: the managed scikit-learn image, built from this
tree, streams a generator predict_fn's tokens; each reaches boto3 as its own PayloadPart (the
container writes each as its own HTTP chunk, and the gateway keeps chunks apart)."""

from __future__ import annotations

import json

import pytest
from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, package

TOKENS = ["Stream", "ing", " in", " a", " container"]
TOKENS_INFERENCE = f"""
    import json

    def model_fn(model_dir):
        return {TOKENS!r}

    def input_fn(body, content_type):
        return json.loads(body)

    def predict_fn(request, tokens):
        yield from tokens[: request["count"]]

    def output_fn(prediction, accept):
        return prediction, "text/plain"
"""


@pytest.mark.docker
def test_a_managed_container_streams_tokens(sm, rt, tmp_path):
    tarball = package(tmp_path, inference_py=TOKENS_INFERENCE)
    create_endpoint(sm, "docker-stream", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    body = json.dumps({"count": len(TOKENS)})
    resp = rt.invoke_endpoint_with_response_stream(EndpointName="docker-stream", ContentType="application/json",
                                                   Body=body)
    assert [event["PayloadPart"]["Bytes"].decode() for event in resp["Body"]] == TOKENS
    assert resp["ContentType"] == "text/plain"
    # InvokeEndpoint on the same model answers the tokens joined.
    whole = rt.invoke_endpoint(EndpointName="docker-stream", ContentType="application/json", Body=body)
    assert whole["Body"].read().decode() == "".join(TOKENS)
    delete_all(sm, "docker-stream")

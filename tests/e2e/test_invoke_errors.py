"""Runtime errors: unknown endpoints, oversized bodies, failing and slow models — each the
error boto3 expects, never a 5xx that would make boto3 run the model again."""

from __future__ import annotations

import re
import urllib.request

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package

RAISING_INFERENCE = """
    def predict_fn(data, model):
        raise ValueError("the model refuses this input")
"""


def runtime_error(rt, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(**kwargs)
    return info.value


def metric(server, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"{server.url}/metrics").read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == wanted:
            return float(m.group(2))
    return 0.0


def test_unknown_endpoint_is_a_validation_error(rt):
    err = runtime_error(rt, EndpointName="ghost", Body=b"1")
    assert err.response["Error"]["Code"] == "ValidationError"
    assert err.response["Error"]["Message"] == "Endpoint ghost of account 123456789012 not found."
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.fixture(scope="module")
def raising(sm, tmp_path_factory):
    tarball = package(tmp_path_factory.mktemp("raising"), iris_classifier(), RAISING_INFERENCE)
    create_endpoint(sm, "raising", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    return "raising"


def test_failing_model_is_model_error_424_called_once(raising, server):
    # Default retry settings on purpose: a 424 must not be retried.
    rt = server.client("sagemaker-runtime")
    labels = dict(endpoint="raising", variant="AllTraffic", container="primary")
    before = metric(server, "dockyard_container_invocations_total", **labels)
    err = runtime_error(rt, EndpointName="raising", ContentType="text/csv", Body="1,2,3,4")
    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err.response["OriginalStatusCode"] == 500
    assert "the model refuses this input" in err.response["OriginalMessage"]
    assert err.response["Error"]["Message"].startswith("Received server error (500) from primary with message")
    assert err.response["LogStreamArn"].startswith("arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/raising")
    assert metric(server, "dockyard_container_invocations_total", **labels) == before + 1
    assert err.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_unsupported_content_type_is_a_client_error_from_the_container(raising, rt):
    err = runtime_error(rt, EndpointName="raising", ContentType="image/png", Body=b"\x89PNG")
    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["OriginalStatusCode"] == 415
    assert err.response["Error"]["Message"].startswith("Received client error (415) from primary")


def test_oversized_body_is_rejected_and_the_server_stays_healthy(raising, rt, server):
    err = runtime_error(rt, EndpointName="raising", ContentType="text/csv", Body=b"1" * (6 * 1024 * 1024 + 1))
    assert err.response["Error"]["Code"] == "ValidationError"
    assert err.response["Error"]["Message"] == "HTTP content length exceeded 6291456 bytes."
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert urllib.request.urlopen(f"{server.url}/_dockyard/health").status == 200


def test_overlong_custom_attributes_are_rejected(raising, rt):
    err = runtime_error(rt, EndpointName="raising", Body=b"1", CustomAttributes="x" * 1025)
    assert err.response["Error"]["Code"] == "ValidationError"
    assert "1024" in err.response["Error"]["Message"]


def test_unknown_target_variant(raising, rt):
    err = runtime_error(rt, EndpointName="raising", Body=b"1", TargetVariant="Nope")
    assert err.response["Error"]["Code"] == "ValidationError"
    assert "Variant Nope not found" in err.response["Error"]["Message"]

"""Bring your own container: examples/byoc-cpp, a C++ inference server with no Python in its
image, deployed through boto3 alone, next to a managed scikit-learn container (Direct), and as
the last step of a Serial pipeline after it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from docker_helpers import owned_containers
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI, csv_stage_inference, iris, iris_classifier, package

from dockyard.artifacts.package import make_model_tarball
from dockyard.images.build_base import local_base

pytestmark = pytest.mark.docker

PROBA_AS_CSV = csv_stage_inference("predict_proba")


def linear_model(tmp, weights: list[float], bias: float, name: str = "linear"):
    """Model data for the C++ server: weights on the first line of weights.txt, the bias on the second."""
    source = tmp / f"{name}-src"
    source.mkdir()
    (source / "weights.txt").write_text(" ".join(map(str, weights)) + f"\n{bias}\n")
    return make_model_tarball(source, tmp / f"{name}.tar.gz")


def predictions(resp) -> list[float]:
    body = json.loads(resp["Body"].read())
    assert body["server"] == "byoc-cpp"
    return body["predictions"]


def test_the_cpp_server_alone(sm, rt, byoc_image, tmp_path):
    tarball = linear_model(tmp_path, [0.5, 0.25], 1.0)
    create_endpoint(sm, "cpp", {"PrimaryContainer": {"Image": byoc_image, "ModelDataUrl": tarball.as_uri()}})
    resp = rt.invoke_endpoint(EndpointName="cpp", ContentType="text/csv", Body="2,4\n4,8")
    assert resp["ContentType"] == "application/json"
    assert predictions(resp) == [3.0, 5.0]
    # The model's own error (a row of the wrong width) comes back as ModelError with its message.
    with pytest.raises(rt.exceptions.ModelError) as info:
        rt.invoke_endpoint(EndpointName="cpp", ContentType="text/csv", Body="1,2,3")
    assert info.value.response["OriginalStatusCode"] == 400
    assert "row 1 has 3 values; the model has 2 weights" in info.value.response["OriginalMessage"]
    delete_all(sm, "cpp")


def test_direct_next_to_a_managed_container(sm, rt, byoc_image, tmp_path):
    classifier = iris_classifier()
    create_endpoint(sm, "cpp-direct", {
        "Containers": [
            {"ContainerHostname": "sklearn", "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, classifier).as_uri()},
            {"ContainerHostname": "cpp", "Image": byoc_image, "ModelDataUrl": linear_model(tmp_path, [1, 1], 0).as_uri()},
        ],
        "InferenceExecutionConfig": {"Mode": "Direct"},
    })
    x, _ = iris()
    rows = "\n".join(",".join(map(str, r)) for r in x[[0, 100]])
    resp = rt.invoke_endpoint(EndpointName="cpp-direct", TargetContainerHostname="sklearn", ContentType="text/csv",
                              Accept="application/json", Body=rows)
    assert json.loads(resp["Body"].read()) == classifier.predict(x[[0, 100]]).tolist()
    resp = rt.invoke_endpoint(EndpointName="cpp-direct", TargetContainerHostname="cpp", ContentType="text/csv",
                              Body="1,2\n3,4")
    assert predictions(resp) == [3.0, 7.0]
    delete_all(sm, "cpp-direct")


def test_serial_pipeline_ends_in_the_cpp_server(sm, rt, byoc_image, tmp_path):
    classifier = iris_classifier()
    create_endpoint(sm, "cpp-serial", {"Containers": [
        {"ContainerHostname": "proba", "Image": SKLEARN_URI,
         "ModelDataUrl": package(tmp_path, classifier, PROBA_AS_CSV).as_uri()},
        # The expected class index: Σ p(class i) · i.
        {"ContainerHostname": "expectation", "Image": byoc_image,
         "ModelDataUrl": linear_model(tmp_path, [0, 1, 2], 0).as_uri()},
    ]})
    x, _ = iris()
    rows = x[[0, 60, 120]]
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",")
    resp = rt.invoke_endpoint(EndpointName="cpp-serial", ContentType="text/csv", Body=buf.getvalue())
    expected = classifier.predict_proba(rows) @ np.array([0, 1, 2])
    np.testing.assert_allclose(predictions(resp), expected, rtol=1e-6)
    delete_all(sm, "cpp-serial")


def test_side_by_side_every_image_needs_the_bind_to_port_label(sm, server, engine, tmp_path):
    plain = local_base(engine)  # a Python base image: no SageMaker labels
    create_endpoint(sm, "no-label", {"Containers": [
        {"ContainerHostname": "ok", "Image": SKLEARN_URI},
        {"ContainerHostname": "plain", "Image": plain},
    ]}, wait=False)
    desc = wait_settled(sm, "no-label")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith(f"Container plain's image {plain} does not have the label "
                                            "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true")
    assert owned_containers(engine, server.state_dir, endpoint="no-label") == []
    delete_all(sm, "no-label")


def test_an_image_with_no_serve_command_fails_saying_so(sm, engine, tmp_path):
    plain = local_base(engine)  # runs `serve` as its command, which a Python base image does not have
    create_endpoint(sm, "no-serve", {"PrimaryContainer": {"Image": plain}}, wait=False)
    desc = wait_settled(sm, "no-serve")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        f"The primary container for production variant AllTraffic could not start image {plain}: ")
    assert "serve" in desc["FailureReason"]
    delete_all(sm, "no-serve")

"""The foundation flow on each runtime: a real ``dockyard serve --runtime <process|docker>`` driven
by boto3 — create model, config and endpoint, wait for InService, invoke, describe, update to a new
config, delete and wait with the ``endpoint_deleted`` waiter.

Every test deploys its own endpoint (names carry the test's), so they pass alone and in any order.
The docker runtime needs an engine and the managed scikit-learn image: without an engine its tests
skip, unless DOCKYARD_REQUIRE_DOCKER=1 (tests/conftest.py's ``engine``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servers import Server

from e2e.deploy import FAST_WAIT, create_endpoint, delete_all
from e2e.models import SKLEARN_URI, iris, iris_classifier, package

PROBA_INFERENCE = """
    def predict_fn(data, model):
        return model.predict_proba(data)
"""
ROWS = [0, 50, 100]  # one flower of each iris species


@pytest.fixture(scope="module", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on ``request.param``'s runtime; the docker one first builds the managed image."""
    if request.param == "docker":
        request.getfixturevalue("sklearn_image")  # skips (or fails, as required) without an engine
    root = tmp_path_factory.mktemp(f"smoke-{request.param}")
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_RUNTIME": request.param}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clients(runtime: Server) -> tuple[Any, Any]:
    """SageMaker and SageMaker runtime clients; the latter without retries, so that a test sees
    exactly what the server answered."""
    return runtime.client("sagemaker"), runtime.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"})


def _deploy(sm: Any, name: str, tmp_path: Path, inference_py: str | None = None) -> dict[str, Any]:
    tarball = package(tmp_path, iris_classifier(), inference_py, name=name)
    return create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})


def _predict(rt: Any, name: str) -> Any:
    rows = iris()[0][ROWS]
    resp = rt.invoke_endpoint(EndpointName=name, ContentType="application/json", Accept="application/json",
                              Body=json.dumps(rows.tolist()))
    assert resp["ContentType"] == "application/json"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    return json.loads(resp["Body"].read())


def test_invoke_answers_the_models_prediction(clients, tmp_path):
    sm, rt = clients
    _deploy(sm, "smoke-invoke", tmp_path)
    assert _predict(rt, "smoke-invoke") == iris_classifier().predict(iris()[0][ROWS]).tolist() == [0, 1, 2]
    delete_all(sm, "smoke-invoke")


def test_describe_endpoint_fields(clients, tmp_path):
    sm, _ = clients
    desc = _deploy(sm, "smoke-describe", tmp_path)
    assert desc["EndpointName"] == desc["EndpointConfigName"] == "smoke-describe"
    assert desc["EndpointArn"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/smoke-describe"
    assert desc["EndpointStatus"] == "InService"
    assert "FailureReason" not in desc
    [variant] = desc["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == variant["DesiredInstanceCount"] == 1
    assert variant["CurrentWeight"] == variant["DesiredWeight"] == 1.0
    assert variant["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_URI
    assert desc["LastModifiedTime"] >= desc["CreationTime"]
    delete_all(sm, "smoke-describe")


def test_update_serves_the_new_config_then_delete(clients, tmp_path):
    sm, rt = clients
    _deploy(sm, "smoke-update", tmp_path)
    tarball = package(tmp_path, iris_classifier(), PROBA_INFERENCE, name="proba")
    sm.create_model(ModelName="smoke-update-proba", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                    PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri(),
                                      "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName="smoke-update-2", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "smoke-update-proba", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])

    sm.update_endpoint(EndpointName="smoke-update", EndpointConfigName="smoke-update-2")
    assert sm.describe_endpoint(EndpointName="smoke-update")["EndpointStatus"] == "Updating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName="smoke-update", WaiterConfig=FAST_WAIT)
    desc = sm.describe_endpoint(EndpointName="smoke-update")
    assert desc["EndpointConfigName"] == "smoke-update-2"
    assert "PendingDeploymentSummary" not in desc
    expected = iris_classifier().predict_proba(iris()[0][ROWS])
    np.testing.assert_allclose(_predict(rt, "smoke-update"), expected, rtol=1e-6)

    sm.delete_endpoint(EndpointName="smoke-update")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="smoke-update", WaiterConfig=FAST_WAIT)
    assert sm.list_endpoints(NameContains="smoke-update")["Endpoints"] == []
    for config in ("smoke-update", "smoke-update-2"):
        sm.delete_endpoint_config(EndpointConfigName=config)
    for model in ("smoke-update", "smoke-update-proba"):
        sm.delete_model(ModelName=model)
    assert sm.list_models(NameContains="smoke-update")["Models"] == []

"""The foundation flow with real boto3: a scikit-learn model by its AWS image URI, deployed,
invoked in three content types, described, listed and deleted."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from e2e.deploy import FAST_WAIT, create_endpoint
from e2e.models import SKLEARN_URI, iris, iris_classifier, package

PROBA_INFERENCE = """
    def predict_fn(data, model):
        return model.predict_proba(data)
"""


@pytest.fixture(scope="module")
def proba_endpoint(sm, tmp_path_factory):
    model = iris_classifier()
    tarball = package(tmp_path_factory.mktemp("proba"), model, PROBA_INFERENCE)
    create_endpoint(
        sm, "proba",
        {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri(),
                              "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}},
         "Tags": [{"Key": "team", "Value": "ml"}]},
    )
    return model


def test_csv_json_npy_give_the_models_own_output(proba_endpoint, rt):
    x, _ = iris()
    rows = x[[0, 50, 100]]
    expected = proba_endpoint.predict_proba(rows)

    csv = "\n".join(",".join(map(str, r)) for r in rows)
    resp = rt.invoke_endpoint(EndpointName="proba", ContentType="text/csv", Accept="application/json", Body=csv)
    assert resp["ContentType"] == "application/json"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    np.testing.assert_allclose(json.loads(resp["Body"].read()), expected, rtol=1e-6)

    resp = rt.invoke_endpoint(EndpointName="proba", ContentType="application/json", Accept="text/csv",
                              Body=json.dumps(rows.tolist()))
    assert resp["ContentType"].startswith("text/csv")
    got = np.loadtxt(io.StringIO(resp["Body"].read().decode()), delimiter=",")
    np.testing.assert_allclose(got, expected, rtol=1e-6)

    buf = io.BytesIO()
    np.save(buf, rows)
    resp = rt.invoke_endpoint(EndpointName="proba", ContentType="application/x-npy", Accept="application/x-npy",
                              Body=buf.getvalue())
    assert resp["ContentType"] == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(resp["Body"].read())), expected, rtol=1e-6)


def test_describe_and_list_shapes_are_complete(proba_endpoint, sm):
    model = sm.describe_model(ModelName="proba")
    assert model["ModelName"] == "proba"
    assert model["ModelArn"] == "arn:aws:sagemaker:us-east-1:123456789012:model/proba"
    assert model["PrimaryContainer"]["Image"] == SKLEARN_URI
    assert model["ExecutionRoleArn"].endswith("role/test")
    assert model["CreationTime"].year >= 2024

    config = sm.describe_endpoint_config(EndpointConfigName="proba")
    assert config["EndpointConfigArn"].endswith(":endpoint-config/proba")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"

    ep = sm.describe_endpoint(EndpointName="proba")
    assert ep["EndpointStatus"] == "InService"
    assert ep["EndpointConfigName"] == "proba"
    assert ep["EndpointArn"].endswith(":endpoint/proba")
    variant = ep["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == variant["DesiredInstanceCount"] == 1
    assert variant["CurrentWeight"] == 1.0
    assert variant["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_URI
    assert ep["LastModifiedTime"] >= ep["CreationTime"]

    names = [m["ModelName"] for m in sm.list_models(NameContains="prob")["Models"]]
    assert names == ["proba"]
    listed = sm.list_endpoints(NameContains="proba", StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["proba"]
    assert sm.list_endpoints(NameContains="proba", StatusEquals="Failed")["Endpoints"] == []
    assert sm.list_endpoint_configs(NameContains="proba")["EndpointConfigs"][0]["EndpointConfigName"] == "proba"
    assert sm.list_tags(ResourceArn=model["ModelArn"])["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_tags_add_list_delete(proba_endpoint, sm):
    arn = sm.describe_endpoint(EndpointName="proba")["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "3"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]
    sm.delete_tags(ResourceArn=arn, TagKeys=["a"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]


def test_pagination_walks_every_model(sm, tmp_path):
    for i in range(12):
        sm.create_model(ModelName=f"page-{i:02d}", PrimaryContainer={"Image": SKLEARN_URI})
    pages = list(sm.get_paginator("list_models").paginate(NameContains="page-", SortBy="Name", SortOrder="Ascending",
                                                          PaginationConfig={"PageSize": 5}))
    assert [len(p["Models"]) for p in pages] == [5, 5, 2]
    assert [m["ModelName"] for p in pages for m in p["Models"]] == [f"page-{i:02d}" for i in range(12)]
    for i in range(12):
        sm.delete_model(ModelName=f"page-{i:02d}")


def test_delete_with_the_endpoint_deleted_waiter(sm, rt, tmp_path):
    tarball = package(tmp_path, iris_classifier())
    create_endpoint(sm, "short-lived", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": str(tarball)}})
    assert rt.invoke_endpoint(EndpointName="short-lived", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read()
    sm.delete_endpoint(EndpointName="short-lived")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="short-lived", WaiterConfig=FAST_WAIT)
    sm.delete_endpoint_config(EndpointConfigName="short-lived")
    sm.delete_model(ModelName="short-lived")
    assert sm.list_endpoints(NameContains="short-lived")["Endpoints"] == []

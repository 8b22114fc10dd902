"""Multi-container endpoints: Direct invocation by TargetContainerHostname, Serial pipelines,
15 containers on one instance, and every validation and routing error of the feature."""

from __future__ import annotations

import io
import json
import urllib.request

import numpy as np
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, csv_stage_inference, iris, iris_classifier, package

SCALER_INFERENCE = csv_stage_inference("transform")
FAILING_INFERENCE = """
    def predict_fn(data, model):
        raise RuntimeError("postprocessor is broken")
"""
ROWS = [0, 25, 50, 75, 100, 125, 149]


def containers(*specs: tuple[str, str]) -> list[dict]:
    return [{"ContainerHostname": host, "Image": SKLEARN_URI, "ModelDataUrl": url} for host, url in specs]


def csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


@pytest.fixture(scope="module")
def direct(sm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("direct")
    x, y = iris()
    models = {
        "logistic": iris_classifier(),
        "tree": DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y),
        "knn": KNeighborsClassifier(n_neighbors=15).fit(x, y),
    }
    specs = [(host, package(tmp, model, name=host).as_uri()) for host, model in models.items()]
    create_endpoint(sm, "ab-direct", {"Containers": containers(*specs), "InferenceExecutionConfig": {"Mode": "Direct"}})
    return models


def test_direct_reaches_each_model_by_hostname(direct, rt):
    x, _ = iris()
    rows = x[ROWS]
    for host, model in direct.items():
        resp = rt.invoke_endpoint(EndpointName="ab-direct", TargetContainerHostname=host,
                                  ContentType="text/csv", Accept="application/json", Body=csv(rows))
        assert json.loads(resp["Body"].read()) == model.predict(rows).tolist(), host
    # The three models disagree somewhere, so routing to the wrong one would show.
    predictions = {host: tuple(m.predict(x)) for host, m in direct.items()}
    assert len(set(predictions.values())) == 3


def test_describe_model_returns_containers_and_mode_as_given(direct, sm):
    desc = sm.describe_model(ModelName="ab-direct")
    assert [c["ContainerHostname"] for c in desc["Containers"]] == ["logistic", "tree", "knn"]
    assert desc["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert "PrimaryContainer" not in desc


def runtime_error(rt, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(ContentType="text/csv", Body="5.1,3.5,1.4,0.2", **kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_direct_routing_errors(direct, rt):
    code, message = runtime_error(rt, EndpointName="ab-direct")
    assert code == "ValidationError"
    assert "uses Direct invocation: set TargetContainerHostname to one of logistic, tree, knn" in message
    code, message = runtime_error(rt, EndpointName="ab-direct", TargetContainerHostname="svm")
    assert code == "ValidationError"
    assert message.startswith("TargetContainerHostname svm is not a container of endpoint ab-direct")


def test_metrics_are_labelled_per_container(direct, rt, server):
    rt.invoke_endpoint(EndpointName="ab-direct", TargetContainerHostname="tree", ContentType="text/csv",
                       Body="5.1,3.5,1.4,0.2")
    text = urllib.request.urlopen(f"{server.url}/metrics").read().decode()
    labelled = {
        (s.labels["endpoint"], s.labels["container"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "dockyard_container_invocations_total"
    }
    assert {c for (e, c) in labelled if e == "ab-direct"} >= {"logistic", "tree", "knn"}
    assert labelled[("ab-direct", "tree")] >= 1
    stats = json.load(urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/ab-direct/stats"))
    rows = {r["container"]: r for r in stats["containers"]}
    assert set(rows) == {"logistic", "tree", "knn"}
    assert rows["tree"]["count"] >= 1
    assert all(r["memory_bytes"] > 10 * 2**20 for r in rows.values())


@pytest.fixture(scope="module")
def serial(sm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    x, y = iris()
    pipeline = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=3)).fit(x, y)
    scaler, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    specs = [
        ("scaler", package(tmp, scaler, SCALER_INFERENCE, name="scaler").as_uri()),
        ("classifier", package(tmp, classifier, name="classifier").as_uri()),
    ]
    create_endpoint(sm, "pipeline", {"Containers": containers(*specs)})  # Serial is the default
    return pipeline


def test_serial_pipeline_equals_the_sklearn_pipeline(serial, rt):
    x, _ = iris()
    rows = x[ROWS] + 0.05  # off the training points, so scaling matters
    resp = rt.invoke_endpoint(EndpointName="pipeline", ContentType="text/csv", Accept="application/json", Body=csv(rows))
    assert resp["ContentType"] == "application/json"
    assert json.loads(resp["Body"].read()) == serial.predict(rows).tolist()
    npy = io.BytesIO()
    np.save(npy, rows)
    resp = rt.invoke_endpoint(EndpointName="pipeline", ContentType="application/x-npy", Accept="text/csv",
                              Body=npy.getvalue())
    assert np.loadtxt(io.StringIO(resp["Body"].read().decode()), delimiter=",").tolist() == serial.predict(rows).tolist()


def test_hostname_sent_to_a_serial_endpoint(serial, rt):
    code, message = runtime_error(rt, EndpointName="pipeline", TargetContainerHostname="scaler")
    assert code == "ValidationError"
    assert "only allowed for endpoints with Direct invocation; endpoint pipeline uses Serial" in message


def test_failure_at_container_k_names_it(sm, rt, tmp_path):
    specs = [
        ("pre", package(tmp_path, StandardScaler().fit(iris()[0]), SCALER_INFERENCE, name="pre").as_uri()),
        ("post", package(tmp_path, iris_classifier(), FAILING_INFERENCE, name="post").as_uri()),
    ]
    create_endpoint(sm, "broken-pipeline", {"Containers": containers(*specs)})
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName="broken-pipeline", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["Error"]["Message"].startswith("Received server error (500) from post with message")
    assert "postprocessor is broken" in err["OriginalMessage"]


def test_fifteen_containers_reach_in_service_and_the_fifteenth_answers(sm, rt, tmp_path):
    url = package(tmp_path, iris_classifier()).as_uri()
    specs = [(f"c{i}", url) for i in range(1, 16)]
    create_endpoint(sm, "fifteen", {"Containers": containers(*specs), "InferenceExecutionConfig": {"Mode": "Direct"}})
    resp = rt.invoke_endpoint(EndpointName="fifteen", TargetContainerHostname="c15", ContentType="text/csv",
                              Body="5.1,3.5,1.4,0.2")
    assert json.loads(resp["Body"].read()) == [0]
    sm.delete_endpoint(EndpointName="fifteen")


def model_error(sm, **kwargs) -> str:
    with pytest.raises(ClientError) as info:
        sm.create_model(ModelName="mce-invalid", **kwargs)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    return info.value.response["Error"]["Message"]


def test_multi_container_validation_errors(sm):
    sixteen = [{"ContainerHostname": f"c{i}", "Image": SKLEARN_URI} for i in range(16)]
    assert "at 'containers' failed to satisfy constraint: Member must have length less than or equal to 15" in model_error(
        sm, Containers=sixteen, InferenceExecutionConfig={"Mode": "Direct"})
    assert model_error(sm, Containers=[{"Image": SKLEARN_URI}, {"ContainerHostname": "b", "Image": SKLEARN_URI}],
                       InferenceExecutionConfig={"Mode": "Direct"}) == (
        "InferenceExecutionConfig Mode Direct requires a ContainerHostname for every container; container(s) 1 have none.")
    assert model_error(sm, Containers=containers(("same", "s3://b/1.tar.gz"), ("same", "s3://b/2.tar.gz"))) == (
        "ContainerHostname same is used by more than one container.")
    assert "at 'containers.1.member.containerHostname' failed to satisfy constraint: Member must satisfy regular expression" in (
        model_error(sm, Containers=[{"ContainerHostname": "under_score", "Image": SKLEARN_URI}]))
    assert model_error(sm, Containers=[{"ContainerHostname": "a", "Image": SKLEARN_URI}, {"Image": SKLEARN_URI}]) == (
        "Either all containers or none must set ContainerHostname; container(s) 2 have none.")
    assert "both were given" in model_error(sm, PrimaryContainer={"Image": SKLEARN_URI}, Containers=[{"Image": SKLEARN_URI}])

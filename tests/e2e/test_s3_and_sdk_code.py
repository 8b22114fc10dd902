"""Model data and code from S3, as the SageMaker SDK uploads them: ``model.tar.gz`` by
``ModelDataUrl`` and ``sourcedir.tar.gz`` by ``SAGEMAKER_SUBMIT_DIRECTORY`` — served from an
S3-compatible store (moto's server) through a dockyard server that honours AWS_ENDPOINT_URL_S3."""

from __future__ import annotations

import json
import tarfile

import pytest
from servers import with_s3

from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI, iris_classifier, package

ENTRY_POINT = """
import json

def predict_fn(data, model):
    return model.predict_proba(data)

def output_fn(prediction, accept):
    return json.dumps({"proba": prediction.round(3).tolist()}), "application/json"
"""


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with with_s3(tmp_path_factory.mktemp("s3")) as pair:
        yield pair


def test_model_and_sourcedir_from_s3_like_the_sdk(s3_server, tmp_path):
    srv, s3 = s3_server
    s3.upload_file(str(package(tmp_path, iris_classifier())), "models", "iris/model.tar.gz")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "serve_iris.py").write_text(ENTRY_POINT)
    with tarfile.open(tmp_path / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "serve_iris.py", arcname="serve_iris.py")
    s3.upload_file(str(tmp_path / "sourcedir.tar.gz"), "models", "code/sourcedir.tar.gz")

    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    create_endpoint(sm, "from-s3", {"PrimaryContainer": {
        "Image": SKLEARN_URI,
        "ModelDataUrl": "s3://models/iris/model.tar.gz",
        # What SKLearnModel(entry_point="serve_iris.py") sets.
        "Environment": {"SAGEMAKER_PROGRAM": "serve_iris.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://models/code/sourcedir.tar.gz",
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": "us-east-1"},
    }})
    resp = rt.invoke_endpoint(EndpointName="from-s3", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")
    proba = json.loads(resp["Body"].read())["proba"][0]
    assert proba[0] > 0.9 and abs(sum(proba) - 1) < 0.01


def test_missing_s3_object_fails_the_endpoint_naming_it(s3_server):
    srv, _ = s3_server
    sm = srv.client("sagemaker")
    create_endpoint(sm, "s3-missing", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": "s3://models/none/model.tar.gz"}},
                    wait=False)
    desc = wait_settled(sm, "s3-missing")
    assert desc["EndpointStatus"] == "Failed"
    assert "s3://models/none/model.tar.gz" in desc["FailureReason"]
    assert "NoSuchKey" in desc["FailureReason"]


def test_a_multi_model_prefix_in_s3(s3_server, tmp_path):
    multi_model_prefix_in_s3(*s3_server, tmp_path)


def multi_model_prefix_in_s3(srv, s3, tmp_path) -> None:
    """Models under s3://models/mme/, invoked by TargetModel; a missing one in SageMaker's words."""
    from e2e.test_multi_model import invoke, named_model

    built = tmp_path / "built"
    built.mkdir()
    for relative, name in [("a.tar.gz", "a"), ("team/b.tar.gz", "b")]:
        named_model(built, relative, name)
        s3.upload_file(str(built / relative), "models", f"mme/{relative}")
    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    create_endpoint(sm, "mme-s3", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": "s3://models/mme/"}})
    try:
        assert invoke(rt, "mme-s3", "a.tar.gz") == {"model": "a", "rows": 2}
        assert invoke(rt, "mme-s3", "team/b.tar.gz") == {"model": "b", "rows": 2}
        assert invoke(rt, "mme-s3", "a.tar.gz", "1,2,3,4") == {"model": "a", "rows": 1}
        with pytest.raises(rt.exceptions.ValidationError) as info:
            invoke(rt, "mme-s3", "team/missing.tar.gz")
        assert info.value.response["Error"]["Message"].startswith(
            "Failed to download model data(bucket: models, key: mme/team/missing.tar.gz). Please ensure that "
            "there is an object located at the URL and that the role passed to CreateModel has permissions to "
            "download the model.")
    finally:
        delete_all(sm, "mme-s3")


def test_the_sdks_multi_data_model(s3_server, tmp_path, monkeypatch):
    """sagemaker.multidatamodel.MultiDataModel, unchanged: add_model uploads under the S3 prefix,
    deploy creates a Mode MultiModel model, predict names the model with target_model."""
    sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker SDK is installed by .ci/run")
    import boto3
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.multidatamodel import MultiDataModel
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer

    from e2e.test_multi_model import named_model

    srv, s3 = s3_server
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.meta.endpoint_url)  # where the SDK uploads
    b = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    sess = sagemaker.Session(
        boto_session=b, default_bucket="models",
        sagemaker_client=b.client("sagemaker", endpoint_url=srv.url),
        sagemaker_runtime_client=b.client("sagemaker-runtime", endpoint_url=srv.url),
    )
    built = tmp_path / "built"
    built.mkdir()
    mdm = MultiDataModel(name="sdk-mme", model_data_prefix="s3://models/sdk-mme/", image_uri=SKLEARN_URI,
                         role="arn:aws:iam::123456789012:role/sdk", sagemaker_session=sess)
    for relative, name in [("a.tar.gz", "a"), ("team/b.tar.gz", "b")]:
        named_model(built, relative, name)
        mdm.add_model(str(built / relative), relative)
    assert sorted(mdm.list_models()) == ["a.tar.gz", "team/b.tar.gz"]
    mdm.deploy(1, "ml.m5.large", endpoint_name="sdk-mme", wait=False)
    sess.wait_for_endpoint("sdk-mme", poll=1)
    predictor = Predictor("sdk-mme", sagemaker_session=sess, serializer=CSVSerializer(), deserializer=JSONDeserializer())
    try:
        assert predictor.predict([[5.1, 3.5, 1.4, 0.2]], target_model="a.tar.gz") == {"model": "a", "rows": 1}
        assert predictor.predict([[5.1, 3.5, 1.4, 0.2]], target_model="team/b.tar.gz") == {"model": "b", "rows": 1}
        model = srv.client("sagemaker").describe_model(ModelName="sdk-mme")["PrimaryContainer"]
        assert (model["Mode"], model["ModelDataUrl"]) == ("MultiModel", "s3://models/sdk-mme/")
    finally:
        predictor.delete_endpoint()
        mdm.delete_model()

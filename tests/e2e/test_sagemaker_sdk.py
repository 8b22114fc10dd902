"""The SageMaker Python SDK (v2) as a client, unchanged: Model.deploy, Predictor.predict with its
serializers, delete — the flow the README's SDK section shows."""

from __future__ import annotations

import pytest

sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker SDK is installed by .ci/run")

from e2e.models import SKLEARN_URI, iris, iris_classifier, package  # noqa: E402


def test_sdk_v2_deploys_predicts_and_deletes(server, tmp_path, monkeypatch):
    import boto3
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer

    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    b = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    # default_bucket avoids the SDK's STS call; explicit clients point it at dockyard.
    sess = sagemaker.Session(
        boto_session=b, default_bucket="bkt",
        sagemaker_client=b.client("sagemaker", endpoint_url=server.url),
        sagemaker_runtime_client=b.client("sagemaker-runtime", endpoint_url=server.url),
    )
    model = iris_classifier()
    sdk_model = Model(image_uri=SKLEARN_URI, model_data=str(package(tmp_path, model)),
                      role="arn:aws:iam::123456789012:role/sdk", sagemaker_session=sess, name="sdk-model")
    sdk_model.deploy(1, "ml.m5.large", endpoint_name="sdk-endpoint", wait=False)
    sess.wait_for_endpoint("sdk-endpoint", poll=1)
    predictor = Predictor("sdk-endpoint", sagemaker_session=sess, serializer=CSVSerializer(),
                          deserializer=JSONDeserializer())
    x, _ = iris()
    assert predictor.predict(x[[0, 75, 149]].tolist()) == model.predict(x[[0, 75, 149]]).tolist()
    predictor.delete_endpoint()
    sdk_model.delete_model()
    sm = server.client("sagemaker")
    assert sm.list_models(NameContains="sdk-model")["Models"] == []

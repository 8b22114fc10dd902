"""A/B testing three models on ONE endpoint (the study guide's worked example).

Three scikit-learn models — logistic regression, a decision tree, k-nearest neighbours — each in
its own container of a multi-container endpoint with Direct invocation; the client picks one per
request with TargetContainerHostname. One instance, three models, no extra cost.

    dockyard serve &                      # in another terminal
    python examples/ab_testing_direct.py  # DOCKYARD_URL=http://127.0.0.1:8780 by default
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import boto3
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from dockyard.artifacts.package import make_model_tarball

URL = os.environ.get("DOCKYARD_URL", "http://127.0.0.1:8780")
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
NAME = "ab-test"


def main() -> None:
    kw = dict(endpoint_url=URL, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sm, runtime = boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw)
    x, y = load_iris(return_X_y=True)
    models = {
        "logistic": LogisticRegression(max_iter=500),
        "tree": DecisionTreeClassifier(max_depth=2),
        "knn": KNeighborsClassifier(n_neighbors=15),
    }
    with tempfile.TemporaryDirectory() as tmp:
        containers = []
        for host, model in models.items():
            src = Path(tmp) / host
            src.mkdir()
            joblib.dump(model.fit(x, y), src / "model.joblib")
            tarball = make_model_tarball(src, Path(tmp) / f"{host}.tar.gz")
            containers.append({"ContainerHostname": host, "Image": IMAGE, "ModelDataUrl": tarball.as_uri()})
        sm.create_model(ModelName=NAME, Containers=containers, InferenceExecutionConfig={"Mode": "Direct"},
                        ExecutionRoleArn="arn:aws:iam::123456789012:role/example")
        sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        try:
            sample = "6.3,2.8,4.9,1.6"  # a borderline flower: the models disagree on it
            for host in models:
                resp = runtime.invoke_endpoint(EndpointName=NAME, TargetContainerHostname=host,
                                               ContentType="text/csv", Accept="application/json", Body=sample)
                print(f"{host:>8}: {resp['Body'].read().decode()}")
        finally:
            sm.delete_endpoint(EndpointName=NAME)
            sm.get_waiter("endpoint_deleted").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            sm.delete_endpoint_config(EndpointConfigName=NAME)
            sm.delete_model(ModelName=NAME)


if __name__ == "__main__":
    main()

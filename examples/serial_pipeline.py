"""An inference pipeline: a scaler container feeding a classifier container (Serial mode).

Container 1 gets the client's CSV, standardises it and answers CSV; that answer is container 2's
request; container 2's answer goes back to the client — the same as sklearn's own Pipeline.

    dockyard serve &
    python examples/serial_pipeline.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import boto3
import joblib
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dockyard.artifacts.package import make_model_tarball

URL = os.environ.get("DOCKYARD_URL", "http://127.0.0.1:8780")
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
NAME = "scaler-classifier"
SCALER_CODE = '''
import io

import numpy as np


def predict_fn(data, model):
    return model.transform(data)


def output_fn(prediction, accept):
    buf = io.StringIO()
    np.savetxt(buf, prediction, delimiter=",", fmt="%.17g")
    return buf.getvalue(), "text/csv"
'''


def package(tmp: Path, name: str, model: object, code: str | None = None) -> str:
    src = Path(tmp) / name
    src.mkdir()
    joblib.dump(model, src / "model.joblib")
    if code:
        (src / "code").mkdir()
        (src / "code" / "inference.py").write_text(code)
    return make_model_tarball(src, Path(tmp) / f"{name}.tar.gz").as_uri()


def main() -> None:
    kw = dict(endpoint_url=URL, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sm, runtime = boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw)
    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=3)).fit(x, y)
    with tempfile.TemporaryDirectory() as tmp:
        containers = [
            {"ContainerHostname": "scaler", "Image": IMAGE,
             "ModelDataUrl": package(Path(tmp), "scaler", pipeline[0], SCALER_CODE)},
            {"ContainerHostname": "classifier", "Image": IMAGE,
             "ModelDataUrl": package(Path(tmp), "classifier", pipeline[1])},
        ]
        sm.create_model(ModelName=NAME, Containers=containers, InferenceExecutionConfig={"Mode": "Serial"},
                        ExecutionRoleArn="arn:aws:iam::123456789012:role/example")
        sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        try:
            rows = x[[0, 60, 120]]
            body = "\n".join(",".join(map(str, r)) for r in rows)
            resp = runtime.invoke_endpoint(EndpointName=NAME, ContentType="text/csv", Accept="application/json", Body=body)
            print("endpoint:", resp["Body"].read().decode())
            print("local:   ", pipeline.predict(rows).tolist())
        finally:
            sm.delete_endpoint(EndpointName=NAME)
            sm.get_waiter("endpoint_deleted").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            sm.delete_endpoint_config(EndpointConfigName=NAME)
            sm.delete_model(ModelName=NAME)


if __name__ == "__main__":
    main()

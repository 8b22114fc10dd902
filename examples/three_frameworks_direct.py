"""TensorFlow, PyTorch and scikit-learn on one endpoint, each reached by TargetContainerHostname.

A multi-container model in Direct mode: the three containers run side by side on one instance and
every request names the one it is for. Each framework is addressed by the AWS image URI the
SageMaker SDK generates for it; dockyard serves them as its managed images, no Docker needed. The
script trains a tiny iris classifier in each framework, deploys the three, asks each for the same
rows and prints one JSON line per container: the classes the endpoint answered and the classes
the local model predicts.

    pip install 'dockyard[sklearn,pytorch,tensorflow]'
    dockyard serve &
    python examples/three_frameworks_direct.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import boto3
import joblib
import keras
import numpy as np
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from dockyard.artifacts.package import make_model_tarball

URL = os.environ.get("DOCKYARD_URL", "http://127.0.0.1:8780")
NAME = "three-frameworks"
IMAGES = {
    "sklearn": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    "pytorch": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
    "tensorflow": "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu",
}


def train(x: np.ndarray, y: np.ndarray) -> dict[str, object]:
    """One small iris classifier per framework."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimiser.step()
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    dense.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    dense.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return {"sklearn": LogisticRegression(max_iter=500).fit(x, y), "pytorch": net.eval(), "tensorflow": dense}


def package(tmp: Path, host: str, model: object) -> str:
    """Each framework's own model file, as its SageMaker container expects it."""
    source = tmp / host
    source.mkdir()
    if host == "sklearn":
        joblib.dump(model, source / "model.joblib")
    elif host == "pytorch":
        torch.jit.script(model).save(str(source / "model.pt"))  # TorchScript, the toolkit's default
    else:
        model.export(str(source / "1"), verbose=False)  # a SavedModel in version directory 1
    return make_model_tarball(source, tmp / f"{host}.tar.gz").as_uri()


def ask(runtime, host: str, rows: np.ndarray) -> list[int]:  # type: ignore[no-untyped-def]
    """The classes one container answers for ``rows``, in the request shape its container takes."""
    if host == "sklearn":
        body, content_type = "\n".join(",".join(map(str, r)) for r in rows), "text/csv"
    elif host == "pytorch":
        body, content_type = json.dumps(rows.tolist()), "application/json"
    else:
        body, content_type = json.dumps({"instances": rows.tolist()}), "application/json"
    resp = runtime.invoke_endpoint(EndpointName=NAME, TargetContainerHostname=host, ContentType=content_type,
                                   Accept="application/json", Body=body)
    answer = json.loads(resp["Body"].read())
    if host == "sklearn":
        return answer  # predicted classes
    if host == "tensorflow":
        answer = answer["predictions"]  # TensorFlow Serving's shape; class probabilities
    return np.argmax(answer, axis=1).tolist()  # PyTorch: logits


def local(host: str, model, rows: np.ndarray) -> list[int]:  # type: ignore[no-untyped-def]
    if host == "sklearn":
        return model.predict(rows).tolist()
    if host == "pytorch":
        with torch.no_grad():
            return model(torch.from_numpy(rows)).argmax(dim=1).tolist()
    return model.predict(rows, verbose=0).argmax(axis=1).tolist()


def main() -> None:
    kw = {"endpoint_url": URL, "region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    sm, runtime = boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw)
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    models = train(x, y)
    with tempfile.TemporaryDirectory() as tmp:
        containers = [{"ContainerHostname": host, "Image": IMAGES[host], "ModelDataUrl": package(Path(tmp), host, m)}
                      for host, m in models.items()]
        sm.create_model(ModelName=NAME, Containers=containers, InferenceExecutionConfig={"Mode": "Direct"},
                        ExecutionRoleArn="arn:aws:iam::123456789012:role/example")
        sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
        try:
            sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
            rows = x[[0, 25, 50, 75, 100, 125, 149]]
            for host, model in models.items():
                print(json.dumps({"container": host, "endpoint": ask(runtime, host, rows),
                                  "local": local(host, model, rows)}))
        finally:
            sm.delete_endpoint(EndpointName=NAME)
            sm.get_waiter("endpoint_deleted").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            sm.delete_endpoint_config(EndpointConfigName=NAME)
            sm.delete_model(ModelName=NAME)


if __name__ == "__main__":
    main()

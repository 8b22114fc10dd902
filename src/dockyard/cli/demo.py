"""``dockyard demo``: the whole SageMaker hosting flow in a few seconds, no Docker needed.

Trains a tiny scikit-learn classifier on the bundled iris data, packages ``model.tar.gz`` with an
``inference.py`` (as the SageMaker SDK would), starts an embedded dockyard server, deploys the
model with plain boto3 under the AWS scikit-learn image URI, invokes it, prints the prediction
and cleans up.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Iterator

import platformdirs
from rich.console import Console
from rich.table import Table

from dockyard.artifacts.package import make_model_tarball
from dockyard.cli.client import sagemaker_clients
from dockyard.cli.embedded import embedded_server

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
NAME = "dockyard-demo"

INFERENCE_PY = '''\
"""Serving code for the demo: the default model_fn loads model.joblib; this names the classes."""
import json

import numpy as np

SPECIES = ["setosa", "versicolor", "virginica"]


def predict_fn(data, model):
    return model.predict(np.asarray(data, dtype=float))


def output_fn(prediction, accept):
    return json.dumps({"species": [SPECIES[int(p)] for p in prediction]}), "application/json"
'''


def train_and_package(workdir: Path) -> tuple[Path, list[list[float]]]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    source = workdir / "model"
    (source / "code").mkdir(parents=True)
    joblib.dump(model, source / "model.joblib")
    (source / "code" / "inference.py").write_text(INFERENCE_PY)
    rows = [x[0].tolist(), x[60].tolist(), x[120].tolist()]
    return make_model_tarball(source, workdir / "model.tar.gz"), rows


@contextlib.contextmanager
def _server(console: Console, url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with contextlib.ExitStack() as stack:
        with console.status("Starting an embedded dockyard server…"):
            started = stack.enter_context(embedded_server())
        yield started


def run_demo(console: Console, keep_on: str | None) -> None:
    # Under the user's home (the cache directory): a local server allows model data there by default.
    cache = Path(platformdirs.user_cache_dir("dockyard", appauthor=False))
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-", dir=cache) as tmp:
        with console.status("Training a LogisticRegression on the iris data…"):
            tarball, rows = train_and_package(Path(tmp))
        console.print(f"[green]✓[/] trained and packaged {tarball.name}")
        with _server(console, keep_on) as url:
            console.print(f"[green]✓[/] dockyard at {url}")
            sm, runtime = sagemaker_clients(url)
            started = time.monotonic()
            sm.create_model(
                ModelName=NAME,
                PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": tarball.as_uri(),
                                  "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}},
                ExecutionRoleArn="arn:aws:iam::123456789012:role/demo",
            )
            sm.create_endpoint_config(
                EndpointConfigName=NAME,
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": NAME,
                                     "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
            )
            sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
            with console.status("Creating endpoint…") as status:
                while (desc := sm.describe_endpoint(EndpointName=NAME))["EndpointStatus"] == "Creating":
                    status.update(f"Endpoint {NAME}: Creating ({time.monotonic() - started:.1f} s)")
                    time.sleep(0.1)
            if desc["EndpointStatus"] != "InService":
                console.print(f"[red]✗[/] endpoint {desc['EndpointStatus']}: {desc.get('FailureReason')}")
                raise SystemExit(1)
            console.print(f"[green]✓[/] endpoint {NAME} InService in {time.monotonic() - started:.2f} s")
            body = "\n".join(",".join(str(v) for v in row) for row in rows)
            resp = runtime.invoke_endpoint(EndpointName=NAME, ContentType="text/csv", Accept="application/json", Body=body)
            prediction = resp["Body"].read().decode()
            table = Table("Input (text/csv)", "Prediction", title=f"invoke_endpoint → variant {resp['InvokedProductionVariant']}")
            table.add_row(body, prediction)
            console.print(table)
            if keep_on is None:
                sm.delete_endpoint(EndpointName=NAME)
                sm.get_waiter("endpoint_deleted").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
                sm.delete_endpoint_config(EndpointConfigName=NAME)
                sm.delete_model(ModelName=NAME)
                console.print("[green]✓[/] cleaned up")

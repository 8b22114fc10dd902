"""``dockyard demo``: the whole SageMaker hosting flow in a few seconds, no Docker needed.

Trains a tiny scikit-learn classifier on the bundled iris data, packages ``model.tar.gz`` with an
``inference.py`` (as the SageMaker SDK would), starts an embedded dockyard server, deploys the
model with plain boto3 under the AWS scikit-learn image URI, invokes it, prints the prediction
and cleans up. With ``--keep`` it deploys on the running server instead and leaves the endpoint
there: its model.tar.gz then lives in the state dir (not a temporary one), so the endpoint comes
back after a server restart, and the demo ends with the commands to invoke and delete it.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
import platformdirs
from rich.console import Console
from rich.table import Table

from dockyard.artifacts.package import make_model_tarball
from dockyard.cli.client import sagemaker_clients, talking_to
from dockyard.cli.embedded import embedded_server
from dockyard.settings import Settings

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
    (source / "code").mkdir(parents=True, exist_ok=True)
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
    if keep_on is not None:
        _refuse_a_kept_demo(keep_on)
    # Under the user's home (the cache directory): a local server reads model data there by default.
    cache = Path(platformdirs.user_cache_dir("dockyard", appauthor=False))
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-", dir=cache) as tmp:
        # A kept endpoint's model data must outlive this process (and survive a server restart).
        workdir = Path(tmp) if keep_on is None else Settings.from_env().state_dir / "demo"
        with console.status("Training a LogisticRegression on the iris data…"):
            tarball, rows = train_and_package(workdir)
        console.print(f"[green]✓[/] trained and packaged {tarball}")
        with _server(console, keep_on) as url, talking_to(url):
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
        _next_steps(console, keep_on, body.splitlines()[0])


def _refuse_a_kept_demo(url: str) -> None:
    """A one-line error, before any work, when an earlier ``demo --keep`` left its endpoint."""
    sm, _ = sagemaker_clients(url, retries=False)
    with talking_to(url):
        names = [m["ModelName"] for m in sm.list_models(NameContains=NAME)["Models"]]
    if NAME in names:
        raise click.ClickException(
            f"{NAME} already exists on {url} (kept by an earlier demo): "
            f"dockyard delete {NAME} --with-config-and-models, then run the demo again"
        )


def _next_steps(console: Console, kept_on: str | None, row: str) -> None:
    if kept_on is None:
        console.print("\nNext: [bold]dockyard serve[/] in another terminal, then [bold]dockyard demo --keep[/] "
                      "to leave the endpoint there and try it yourself.")
        return
    url_flag = f" --endpoint-url {kept_on}"
    console.print(f"\nEndpoint {NAME} is left running. Next:", highlight=False)
    console.print(f"  dockyard invoke {NAME} --content-type text/csv --body {row}{url_flag}", highlight=False,
                  soft_wrap=True)
    console.print(
        f"  python -c \"import boto3; rt = boto3.client('sagemaker-runtime', endpoint_url='{kept_on}', "
        f"region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x'); "
        f"print(rt.invoke_endpoint(EndpointName='{NAME}', ContentType='text/csv', Body='{row}')['Body'].read())\"",
        highlight=False, soft_wrap=True)
    console.print(f"  dockyard delete {NAME} --with-config-and-models{url_flag}", highlight=False, soft_wrap=True)

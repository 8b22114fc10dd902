"""``dockyard invoke`` and ``dockyard delete``: what users reach for once an endpoint is up,
through the same boto3 calls their code makes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import ClientError

from dockyard.cli.client import sagemaker_clients, talking_to, url_option

# How long `delete` waits for the endpoint to be gone before deleting its config and models.
DELETE_TIMEOUT = 600.0


@click.command("invoke")
@url_option
@click.argument("endpoint")
@click.option("--body", default=None, help="The request body, as text.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read the request body from this file.")
@click.option("--content-type", default=None, help="Content-Type of the body, e.g. text/csv.  [default: none]")
@click.option("--accept", default=None, help="The answer's wanted Content-Type.  [default: none]")
@click.option("--target-model", default=None, help="TargetModel (multi-model endpoints).")
@click.option("--target-container", default=None, help="TargetContainerHostname (Direct multi-container endpoints).")
@click.option("--target-variant", default=None, help="TargetVariant: the production variant to ask.")
def invoke_command(url: str, endpoint: str, body: str | None, path: Path | None, content_type: str | None,
                   accept: str | None, target_model: str | None, target_container: str | None,
                   target_variant: str | None) -> None:
    """InvokeEndpoint on ENDPOINT with --body or --file; print the answer's body."""
    if (body is None) == (path is None):
        raise click.ClickException("give the request body with exactly one of --body TEXT or --file PATH")
    optional = {"ContentType": content_type, "Accept": accept, "TargetModel": target_model,
                "TargetContainerHostname": target_container, "TargetVariant": target_variant}
    # boto3's retries, as in user code: a 503 while a restarted server brings instances back is retried.
    _, runtime = sagemaker_clients(url)
    payload = path.read_bytes() if path is not None else (body or "").encode()
    with talking_to(url):
        response = runtime.invoke_endpoint(EndpointName=endpoint, Body=payload,
                                           **{k: v for k, v in optional.items() if v is not None})
        answer = response["Body"].read()
    out = click.get_binary_stream("stdout")
    out.write(answer if answer.endswith(b"\n") else answer + b"\n")
    out.flush()


@click.command("delete")
@url_option
@click.argument("endpoint")
@click.option("--with-config-and-models", "everything", is_flag=True,
              help="Also delete the endpoint's config and the models its variants name.")
def delete_command(url: str, endpoint: str, everything: bool) -> None:
    """Delete ENDPOINT (waiting until it is gone), and with --with-config-and-models its config and models."""
    sm, _ = sagemaker_clients(url, retries=False)
    with talking_to(url):
        config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        config = sm.describe_endpoint_config(EndpointConfigName=config_name) if everything else None
        sm.delete_endpoint(EndpointName=endpoint)
        _wait_gone(sm, endpoint)
        click.echo(f"Deleted endpoint {endpoint}")
        if config is None:
            return
        sm.delete_endpoint_config(EndpointConfigName=config_name)
        click.echo(f"Deleted endpoint config {config_name}")
        variants = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
        for model in dict.fromkeys(v["ModelName"] for v in variants if v.get("ModelName")):
            sm.delete_model(ModelName=model)
            click.echo(f"Deleted model {model}")


def _wait_gone(sm: Any, endpoint: str) -> None:
    deadline = time.monotonic() + DELETE_TIMEOUT
    while time.monotonic() < deadline:
        try:
            sm.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if "Could not find" in exc.response.get("Error", {}).get("Message", ""):
                return
            raise
        time.sleep(0.1)
    raise click.ClickException(f"endpoint {endpoint} is still being deleted after {DELETE_TIMEOUT:g} s")

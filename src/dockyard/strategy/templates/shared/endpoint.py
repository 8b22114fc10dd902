"""Deploy, invoke and delete a SageMaker endpoint with plain boto3, against dockyard or AWS.

``--endpoint-url`` (or DOCKYARD_URL) points boto3 at a dockyard server; without it boto3 talks to
SageMaker in your AWS account. A local model.tar.gz is passed as a ``file://`` URL, which dockyard
accepts; give ``--s3-prefix s3://bucket/prefix`` to upload it to S3 first, as SageMaker needs.

Each run names its model, endpoint config and endpoint ``<project>-<random suffix>`` (``--name``
fixes the name) and deletes only what it created itself: an existing resource of the same name is
never touched, here or on SageMaker.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
# One iris flower of each species (sepal length, sepal width, petal length, petal width).
SAMPLE_CSV = "5.1,3.5,1.4,0.2\n5.0,2.0,3.5,1.0\n6.9,3.2,5.7,2.3\n"
PLACEHOLDER_ROLE = "arn:aws:iam::123456789012:role/dockyard"
# What the SageMaker Python SDK sets for serving code packed under code/ in model.tar.gz.
CODE_ENVIRONMENT = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}


def arguments(description: str | None, name: str) -> argparse.ArgumentParser:
    """The options every deploy script takes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", default=os.environ.get("DOCKYARD_URL"),
                        help="dockyard server URL (default: $DOCKYARD_URL; neither: AWS)")
    parser.add_argument("--name", help=f"name of the model, endpoint config and endpoint (default: {name}-<random>)")
    parser.set_defaults(project=name)
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--role", default=os.environ.get("SAGEMAKER_ROLE", PLACEHOLDER_ROLE),
                        help="execution role ARN (a real one on AWS; default: $SAGEMAKER_ROLE)")
    parser.add_argument("--s3-prefix", help="upload model data under this s3://bucket/prefix (needed on AWS)")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    return parser


def pack(source: Path, dest: Path) -> Path:
    """model.tar.gz with the files under ``source`` at its root, as SageMaker unpacks them into /opt/ml/model."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
    return dest


class Deployment:
    """One model, endpoint config and endpoint, all named ``args.name`` (or a new unique name); those
    this run created are deleted on exit unless --keep."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # 6 hex digits after a name of at most 56 characters: within SageMaker's 63.
        self.name: str = args.name or f"{args.project[:56].rstrip('-')}-{secrets.token_hex(3)}"
        self.created: list[str] = []
        session = boto3.Session(region_name=args.region)
        keys: dict[str, str] = {}
        if args.endpoint_url and session.get_credentials() is None:
            # dockyard checks no signatures, but boto3 sends no request unsigned.
            keys = {"aws_access_key_id": "dockyard", "aws_secret_access_key": "dockyard"}
        self.session, self.keys = session, keys
        self.sm = session.client("sagemaker", endpoint_url=args.endpoint_url, **keys)
        self.runtime = session.client("sagemaker-runtime", endpoint_url=args.endpoint_url, **keys)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.args.keep:
            print(f"Endpoint {self.name} is left running (--keep); delete it with:\n"
                  f"  dockyard delete {self.name} --with-config-and-models")
            return
        self.delete()

    def model_data(self, tarball: Path) -> str:
        """The ModelDataUrl for ``tarball``: a file:// URL, or an s3:// URL after uploading it."""
        if not self.args.s3_prefix:
            return tarball.resolve().as_uri()
        bucket, _, prefix = self.args.s3_prefix.removeprefix("s3://").partition("/")
        key = "/".join(p for p in (prefix.strip("/"), self.name, tarball.parent.name, tarball.name) if p)
        self.session.client("s3").upload_file(str(tarball), bucket, key)
        return f"s3://{bucket}/{key}"

    def container(self, image: str, tarball: Path, **definition: Any) -> dict[str, Any]:
        """A ContainerDefinition: ``image`` serving ``tarball`` with the code/inference.py in it."""
        return {"Image": image, "ModelDataUrl": self.model_data(tarball), "Environment": CODE_ENVIRONMENT, **definition}

    def create(self, **model: Any) -> None:
        """CreateModel with ``model``, one variant on one instance, CreateEndpoint; wait for InService."""
        print(f"Creating endpoint {self.name}")
        self.sm.create_model(ModelName=self.name, ExecutionRoleArn=self.args.role, **model)
        self.created.append("model")
        self.sm.create_endpoint_config(
            EndpointConfigName=self.name,
            ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": self.name,
                "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
            }],
        )
        self.created.append("endpoint-config")
        self.sm.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name)
        self.created.append("endpoint")
        self.wait_in_service()

    def wait_in_service(self, timeout: float = 1800.0) -> None:
        _poll(lambda: _status(self.sm, self.name) not in ("Creating", "Updating"), timeout)
        desc = self.sm.describe_endpoint(EndpointName=self.name)
        if desc["EndpointStatus"] != "InService":
            reason = desc.get("FailureReason", f"still {desc['EndpointStatus']} after {timeout:g} s")
            raise SystemExit(f"Endpoint {self.name} is {desc['EndpointStatus']}: {reason}")

    def invoke(self, body: str, content_type: str = "text/csv", accept: str = "application/json", **extra: Any) -> str:
        """InvokeEndpoint; the response body as text."""
        response = self.runtime.invoke_endpoint(
            EndpointName=self.name, Body=body, ContentType=content_type, Accept=accept, **extra
        )
        return response["Body"].read().decode()

    def delete(self, timeout: float = 1800.0) -> None:
        """Delete what this run created: the endpoint (waiting until it is gone), its config, the model."""
        if "endpoint" in self.created and _exists(lambda: self.sm.delete_endpoint(EndpointName=self.name)):
            _poll(lambda: _status(self.sm, self.name) is None, timeout)
        if "endpoint-config" in self.created:
            _exists(lambda: self.sm.delete_endpoint_config(EndpointConfigName=self.name))
        if "model" in self.created:
            _exists(lambda: self.sm.delete_model(ModelName=self.name))
        self.created.clear()


def _status(sm: Any, name: str) -> str | None:
    """The endpoint's status, or None once it does not exist."""
    try:
        return sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise


def _poll(done: Callable[[], bool], timeout: float) -> None:
    # dockyard changes state within a second or two, SageMaker within minutes: back off from 0.1 s to 5 s.
    deadline = time.monotonic() + timeout
    delay = 0.1
    while not done() and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def _exists(delete: Any) -> bool:
    """Run a Delete* call; False when the resource was never created."""
    try:
        delete()
    except ClientError as exc:
        if _not_found(exc):
            return False
        raise
    return True


def _not_found(error: ClientError) -> bool:
    # SageMaker reports a missing resource as a ValidationException saying "Could not find ...".
    return "Could not find" in error.response.get("Error", {}).get("Message", "")

"""boto3 clients and plain HTTP for CLI commands that talk to a running dockyard server."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
import click
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EndpointConnectionError

DEFAULT_URL = f"http://127.0.0.1:{os.environ.get('DOCKYARD_PORT', '8780')}"

url_option = click.option(
    "--endpoint-url",
    "url",
    envvar="DOCKYARD_URL",
    default=DEFAULT_URL,
    show_default=True,
    show_envvar=True,
    help="The dockyard server to talk to.",
)


def unreachable(url: str) -> click.ClickException:
    """The one-line error every command gives when no server answers at ``url``."""
    return click.ClickException(f"cannot reach dockyard at {url}: is `dockyard serve` running?")


def _credentials() -> Credentials:
    """The credentials boto3 would use (environment, profile, …); dummy ones when there are none
    (a server without ``--credentials`` accepts any signature)."""
    found = botocore.session.Session().get_credentials()
    return found.get_frozen_credentials() if found else Credentials("dockyard", "dockyard")


def sagemaker_clients(url: str, region: str = "us-east-1", retries: bool = True) -> tuple[Any, Any]:
    """(sagemaker, sagemaker-runtime) boto3 clients pointed at ``url``."""
    creds = _credentials()
    kw = dict(
        config=None if retries else Config(retries={"max_attempts": 1, "mode": "standard"}),
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    return boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw)


def get_json(url: str, path: str, region: str = "us-east-1") -> dict[str, Any]:
    """GET one of dockyard's own ``/_dockyard`` routes, SigV4-signed as boto3 would sign it;
    errors become a click error naming them."""
    signed = AWSRequest(method="GET", url=f"{url}{path}", headers={"Host": urlsplit(url).netloc})
    SigV4Auth(_credentials(), "sagemaker", region).add_auth(signed)
    try:
        # AWS_CA_BUNDLE as for boto3: a server with a self-signed --tls-cert.
        tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
        request = urllib.request.Request(signed.url, headers=dict(signed.headers))
        with urllib.request.urlopen(request, timeout=30, context=tls) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", str(exc))
        except ValueError:
            message = str(exc)
        raise click.ClickException(message) from None
    except OSError:
        raise unreachable(url) from None


@contextlib.contextmanager
def talking_to(url: str) -> Iterator[None]:
    """Turn a server that cannot be reached, or an AWS error, into a one-line CLI error."""
    try:
        yield
    except EndpointConnectionError:
        raise unreachable(url) from None
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise click.ClickException(f"{err.get('Code')}: {err.get('Message')}") from None

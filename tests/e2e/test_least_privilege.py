"""User code runs with least privilege (process runtime): a container sees the contract's
environment, its model's ``Environment`` and a minimal base — never the server's own environment
(its AWS credentials, its DOCKYARD_* settings)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from servers import Server

from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, package

SECRETS = {"AWS_SECRET_ACCESS_KEY": "sekrit", "AWS_ACCESS_KEY_ID": "AKIDSERVER", "DOCKYARD_FOO": "x"}

# A managed container's inference.py and a BYOC `serve` that both answer with what they run as.
REPORTING_INFERENCE = """
import json
import os

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return body

def predict_fn(data, model):
    return {"uid": os.getuid(), "env": dict(os.environ)}

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

REPORTING_SERVE = """
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(json.dumps({"uid": os.getuid(), "env": dict(os.environ)}).encode())

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))), Handler).serve_forever()
"""


def reporting_container(directory: Path, python: str) -> Path:
    """A BYOC directory image whose `serve` runs REPORTING_SERVE on ``python``."""
    directory.mkdir(parents=True, exist_ok=True)
    serve = directory / "serve"
    serve.write_text(f"#!{python}\n" + textwrap.dedent(REPORTING_SERVE))
    serve.chmod(0o755)
    return directory


def invoke_report(rt: Any, endpoint: str) -> dict[str, Any]:
    resp = rt.invoke_endpoint(EndpointName=endpoint, ContentType="application/json", Body=b"{}")
    return json.loads(resp["Body"].read())


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("secrets")
    srv = Server(root / "state", root / "server.log", SECRETS).start()
    yield srv
    srv.stop()


def assert_least_environment(env: dict[str, str]) -> None:
    leaked = sorted(name for name in SECRETS if name in env)
    assert leaked == [], f"the server's own variables reached the container: {leaked}"
    assert env["GREETING"] == "hello"  # the model's Environment
    assert env["SAGEMAKER_BIND_TO_PORT"].isdigit()  # the contract's
    assert "PATH" in env


def test_managed_container_never_sees_the_servers_environment(secret_server, tmp_path):
    sm, rt = secret_server.client("sagemaker"), secret_server.client("sagemaker-runtime")
    tarball = package(tmp_path, inference_py=REPORTING_INFERENCE)
    create_endpoint(sm, "env-managed", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri(), "Environment": {"GREETING": "hello"}}})
    assert_least_environment(invoke_report(rt, "env-managed")["env"])
    delete_all(sm, "env-managed")


def test_byoc_container_never_sees_the_servers_environment(secret_server, tmp_path):
    sm, rt = secret_server.client("sagemaker"), secret_server.client("sagemaker-runtime")
    image = reporting_container(tmp_path / "byoc", sys.executable)
    create_endpoint(sm, "env-byoc", {"PrimaryContainer": {"Image": str(image), "Environment": {"GREETING": "hello"}}})
    assert_least_environment(invoke_report(rt, "env-byoc")["env"])
    delete_all(sm, "env-byoc")

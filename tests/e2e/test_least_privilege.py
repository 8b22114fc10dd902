"""User code runs with least privilege (process runtime): a container sees the contract's
environment, its model's ``Environment`` and a minimal base — never the server's own environment
(its AWS credentials, its DOCKYARD_* settings); and when the server runs as root, containers run
as an unprivileged user who owns only its instance directory."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import Server

from dockyard.runtime.privileges import container_user, unreachable
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI, iris_classifier, package

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
        with open(os.path.join(os.environ["DOCKYARD_MODEL_DIR"], "weights.txt")) as f:
            weights = f.read()
        try:
            state = sorted(os.listdir(os.environ["SERVER_STATE_DIR"]))
        except PermissionError:
            state = "denied"
        report = {"uid": os.getuid(), "env": dict(os.environ), "weights": weights, "state_dir": state}
        self.answer(json.dumps(report).encode())

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


def byoc_model(image: Path, weights: Path, server: Server) -> dict[str, Any]:
    weights.mkdir(parents=True, exist_ok=True)
    (weights / "weights.txt").write_text("0.42")
    environment = {"GREETING": "hello", "SERVER_STATE_DIR": str(server.state_dir)}
    return {"PrimaryContainer": {"Image": str(image), "ModelDataUrl": str(weights), "Environment": environment}}


def test_byoc_container_never_sees_the_servers_environment(secret_server, tmp_path):
    sm, rt = secret_server.client("sagemaker"), secret_server.client("sagemaker-runtime")
    image = reporting_container(tmp_path / "byoc", sys.executable)
    create_endpoint(sm, "env-byoc", byoc_model(image, tmp_path / "weights", secret_server))
    report = invoke_report(rt, "env-byoc")
    assert_least_environment(report["env"])
    assert report["weights"] == "0.42"
    delete_all(sm, "env-byoc")


# --- the server runs as root: containers run as `nobody` ----------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the server drops privileges only when it runs as root")


def python_for_nobody() -> str | None:
    """An interpreter `nobody` can run (pyenv's under /root cannot be)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            subprocess.run([candidate, "-c", "pass"], user="nobody", group="nogroup", extra_groups=[], check=True,
                           capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            continue
        return candidate
    return None


def managed_blocked() -> Path | None:
    """What stops `nobody` from running dockyard's managed server here (None: nothing)."""
    import sysconfig

    import dockyard

    user = container_user("nobody")
    assert user is not None
    needed = [Path(sys.executable).resolve(), Path(sysconfig.get_path("stdlib")), Path(dockyard.__file__).resolve().parent]
    return unreachable(user, needed)


@pytest.fixture(scope="module")
def root_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("as-root")  # private (0700): the containers' directories must live elsewhere
    srv = Server(root / "state", root / "server.log", {**SECRETS, "DOCKYARD_CONTAINER_USER": "nobody"}).start()
    yield srv
    srv.stop()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory `nobody` may read, for a BYOC image (pytest's own tmp dirs are private)."""
    with tempfile.TemporaryDirectory(prefix="dockyard-byoc-") as directory:
        os.chmod(directory, 0o755)
        yield Path(directory)


@needs_root
def test_byoc_container_of_a_root_server_runs_as_nobody_owning_only_its_instance(root_server, open_dir, tmp_path):
    python = python_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter here that `nobody` may run")
    sm, rt = root_server.client("sagemaker"), root_server.client("sagemaker-runtime")
    image = reporting_container(open_dir / "byoc", python)
    create_endpoint(sm, "as-nobody", byoc_model(image, tmp_path / "weights", root_server))
    report = invoke_report(rt, "as-nobody")
    assert report["uid"] == pwd.getpwnam("nobody").pw_uid != 0
    assert report["weights"] == "0.42"  # its model data is readable…
    assert report["state_dir"] == "denied"  # …the server's state directory is not
    assert_least_environment(report["env"])
    home = Path(report["env"]["HOME"])
    assert home.owner() == "nobody" and not home.is_relative_to(root_server.state_dir)
    delete_all(sm, "as-nobody")


@needs_root
def test_managed_container_of_a_root_server_runs_as_nobody(root_server, tmp_path):
    if managed_blocked() is not None:
        pytest.skip(f"`nobody` cannot read {managed_blocked()} here")
    sm, rt = root_server.client("sagemaker"), root_server.client("sagemaker-runtime")
    tarball = package(tmp_path, model=iris_classifier(), inference_py=REPORTING_INFERENCE)
    create_endpoint(sm, "managed-nobody", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri(), "Environment": {"GREETING": "hello"}}})
    report = invoke_report(rt, "managed-nobody")
    assert report["uid"] == pwd.getpwnam("nobody").pw_uid
    assert_least_environment(report["env"])
    delete_all(sm, "managed-nobody")


@needs_root
def test_managed_container_nobody_cannot_run_fails_naming_the_path(root_server, tmp_path):
    blocked = managed_blocked()
    if blocked is None:
        pytest.skip("`nobody` can run dockyard's managed server here")
    sm = root_server.client("sagemaker")
    tarball = package(tmp_path, model=iris_classifier())
    create_endpoint(sm, "managed-blocked", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}},
                    wait=False)
    desc = wait_settled(sm, "managed-blocked")
    assert desc["EndpointStatus"] == "Failed"
    assert f"user nobody (DOCKYARD_CONTAINER_USER), who cannot read {blocked}" in desc["FailureReason"]
    delete_all(sm, "managed-blocked")

"""The examples run as scripts against a real server; the CLI and the AWS CLI work against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], url: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKYARD_URL": url, "COLUMNS": "200"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_ab_testing_example(server):
    out = run([sys.executable, "examples/ab_testing_direct.py"], server.url)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(":", 1) for line in out.stdout.strip().splitlines())
    assert set(k.strip() for k in lines) == {"logistic", "tree", "knn"}
    assert all(json.loads(v) in ([1], [2]) for v in lines.values())


def test_serial_pipeline_example(server):
    out = run([sys.executable, "examples/serial_pipeline.py"], server.url)
    assert out.returncode == 0, out.stderr
    endpoint, local = out.stdout.strip().splitlines()
    assert json.loads(endpoint.split(":", 1)[1]) == json.loads(local.split(":", 1)[1])


def test_aws_cli_lists_endpoints(server, sm):
    sm.create_model(ModelName="cli-visible", PrimaryContainer={"Image": "dockyard/sklearn"})
    out = run(["aws", "sagemaker", "list-models", "--name-contains", "cli-visible", "--endpoint-url", server.url,
               "--region", "us-east-1", "--output", "json"], server.url)
    assert out.returncode == 0, out.stderr
    assert [m["ModelName"] for m in json.loads(out.stdout)["Models"]] == ["cli-visible"]
    out = run(["aws", "sagemaker", "list-endpoints", "--endpoint-url", server.url, "--region", "us-east-1"], server.url)
    assert out.returncode == 0, out.stderr
    assert "Endpoints" in json.loads(out.stdout)
    sm.delete_model(ModelName="cli-visible")


def test_dockyard_endpoints_logs_and_stats(server, sm, tmp_path):
    from e2e.deploy import create_endpoint
    from e2e.models import SKLEARN_URI, iris_classifier, package

    create_endpoint(sm, "cli-ep", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    out = run(["aws", "sagemaker-runtime", "invoke-endpoint", "--endpoint-url", server.url, "--region", "us-east-1",
               "--endpoint-name", "cli-ep", "--content-type", "text/csv", "--body", "5.1,3.5,1.4,0.2",
               str(tmp_path / "out.json")], server.url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads((tmp_path / "out.json").read_text()) == [0]
    out = run([sys.executable, "-m", "dockyard", "endpoints"], server.url)
    assert out.returncode == 0, out.stderr
    assert "cli-ep" in out.stdout and "InService" in out.stdout
    out = run([sys.executable, "-m", "dockyard", "logs", "cli-ep"], server.url)
    assert out.returncode == 0, out.stderr
    assert "primary" in out.stdout
    out = run([sys.executable, "-m", "dockyard", "stats", "cli-ep"], server.url)
    assert out.returncode == 0, out.stderr
    assert "primary" in out.stdout and "Memory MiB" in out.stdout
    out = run([sys.executable, "-m", "dockyard", "logs", "no-such-endpoint"], server.url)
    assert out.returncode == 1
    assert "Endpoint no-such-endpoint not found." in out.stderr
    sm.delete_endpoint(EndpointName="cli-ep")


@pytest.mark.slow
def test_dockyard_demo_runs_from_scratch():
    out = run([sys.executable, "-m", "dockyard", "demo"], "http://127.0.0.1:1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert '{"species": ["setosa", "versicolor", "virginica"]}' in out.stdout
    assert "cleaned up" in out.stdout


def test_cli_says_when_no_server_answers():
    out = run([sys.executable, "-m", "dockyard", "endpoints"], "http://127.0.0.1:1")
    assert out.returncode == 1
    assert "cannot reach dockyard at http://127.0.0.1:1" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_on_a_taken_port_says_so(server, tmp_path):
    out = run([sys.executable, "-m", "dockyard", "serve", "--port", str(server.port), "--state-dir", str(tmp_path)],
              server.url, timeout=60)
    assert out.returncode == 1
    assert f"cannot serve on 127.0.0.1:{server.port}" in out.stderr
    assert "Traceback" not in out.stderr

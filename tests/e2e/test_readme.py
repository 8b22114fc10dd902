"""The README's quick start and SageMaker SDK section work as written: their code blocks run in a
fresh directory against a real server (and, for the SDK's ``s3://`` flow, moto's S3 server),
with only the addresses replaced."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from servers import Server

from dockyard.runtime.ports import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_URL = "http://127.0.0.1:8780"
S3_URL = "http://127.0.0.1:9000"


def blocks(section: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block in the README section titled ``section``."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```(\w*)\n(.*?)```", text[start:end], flags=re.DOTALL)


def run_shell(code: str, cwd: Path, env: dict[str, str]) -> None:
    """Each command line of a bash block (``dockyard serve`` lines are the server the test runs)."""
    for line in code.splitlines():
        command = line.split("  #")[0].strip()
        if not command or command.startswith(("dockyard serve", "export ")):
            continue
        argv = shlex.split(command)
        argv[:1] = [sys.executable, "-m", "dockyard"] if argv[0] == "dockyard" else [sys.executable]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"


def run_python(code: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, f"{code}\n{done.stderr[-3000:]}"
    return done.stdout


def test_quick_start_runs_as_written(server, sm, tmp_path):
    env = {**os.environ, "DOCKYARD_URL": server.url}
    ran = []
    for language, code in blocks("Quick start with boto3"):
        code = code.replace(DEFAULT_URL, server.url)
        if language == "python":
            assert run_python(code, tmp_path, env).strip() == "b'[0]'"
        elif language == "bash" and "aws " not in code:
            run_shell(code, tmp_path, env)
        ran.append(language)
    assert ran.count("python") == 1 and ran.count("bash") == 4
    assert (tmp_path / "model.tar.gz").is_file()
    assert "iris" not in [m["ModelName"] for m in sm.list_models()["Models"]]  # the CLI block deleted it


@pytest.fixture
def s3_store():
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    yield f"http://127.0.0.1:{port}"
    moto.stop()


def test_sagemaker_sdk_section_runs_as_written(s3_store, tmp_path):
    pytest.importorskip("sagemaker", reason="the SageMaker SDK comes with .[test]")
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": s3_store, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
    server = Server(tmp_path / "state", tmp_path / "server.log",
                    {k: env[k] for k in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}).start()
    try:
        for language, code in blocks("Quick start with boto3"):
            if language == "bash" and "dockyard package" in code:
                run_shell(code, tmp_path, env)
        sections = blocks("With the SageMaker Python SDK")
        assert [language for language, _ in sections] == ["python", "bash", "python"]
        script = "\n".join(code for language, code in sections if language == "python")
        out = run_python(script.replace(DEFAULT_URL, server.url).replace(S3_URL, s3_store), tmp_path, env)
        # Between the SDK's own output (and wait_for_endpoint's progress dots), the two predictions.
        assert re.search(r"\[0\]\n(.*\n)*.*\{'species': \[0\]\}\n$", out), out
        sm = server.client("sagemaker")
        assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
        uploaded = boto3.client("s3", endpoint_url=s3_store, region_name="us-east-1").list_objects_v2(Bucket="models")
        assert any(o["Key"].endswith("sourcedir.tar.gz") for o in uploaded["Contents"])  # the SDK's code upload
    finally:
        server.stop()

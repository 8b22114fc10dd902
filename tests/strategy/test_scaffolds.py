"""Every ``dockyard init`` scaffold, as generated, deploys through boto3 on a real dockyard server and
prints a prediction: the test runs exactly the commands ``init`` tells the user to run."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, iris_classifier, package
from needs import require

from dockyard.cli.main import main
from dockyard.strategy.scaffolds import SCAFFOLDS, project_name

SPECIES = ["setosa", "versicolor", "virginica"]


def run_commands(project: Path, commands: tuple[str, ...], url: str) -> str:
    """Run the scaffold's commands in ``project``; return the last one's stdout."""
    output = ""
    for command in commands:
        argv = shlex.split(command)
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] == "dockyard":
            argv[:1] = [sys.executable, "-m", "dockyard"]
        if command.startswith("python deploy.py"):
            argv += ["--endpoint-url", url]
        done = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
        output = done.stdout
    return output


def init(tmp_path: Path, strategy: str, name: str) -> Path:
    project = tmp_path / name
    result = CliRunner().invoke(main, ["init", strategy, str(project)])
    assert result.exit_code == 0, result.output
    for command in SCAFFOLDS[strategy].commands:
        assert command in result.output
    return project


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, server) -> dict[str, str]:
    """Each scaffold generated and run as its README says; the last command's stdout per scaffold.

    The projects run side by side (each has its own endpoint name): most of their time is spent
    waiting for endpoints, and the suite must stay fast.
    """
    tmp = tmp_path_factory.mktemp("scaffolds")
    projects = {strategy: init(tmp, strategy, f"scaffold-{strategy}") for strategy in SCAFFOLDS}
    with ThreadPoolExecutor(max_workers=len(projects)) as pool:
        futures = {s: pool.submit(run_commands, p, SCAFFOLDS[s].commands, server.url) for s, p in projects.items()}
        return {strategy: future.result() for strategy, future in futures.items()}


@pytest.mark.parametrize("strategy", ["managed", "extend", "byom", "byoc", "pipeline"])
def test_scaffold_deploys_and_prints_a_prediction(strategy, deployed, sm):
    lines = deployed[strategy].strip().splitlines()
    assert json.loads(lines[-1]) == {"species": SPECIES}
    # deploy.py names what it creates uniquely, and cleans up after itself.
    [name] = [line.removeprefix("Creating endpoint ") for line in lines if line.startswith("Creating endpoint ")]
    assert re.fullmatch(f"scaffold-{strategy}-[0-9a-f]{{6}}", name)
    assert name not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert name not in [m["ModelName"] for m in sm.list_models()["Models"]]


@pytest.mark.parametrize(("framework", "module", "model_file"), [
    ("xgboost", "xgboost", "xgboost-model"), ("pytorch", "torch", "model.pt"), ("tensorflow", "keras", "1")])
def test_managed_scaffold_comes_for_each_managed_framework(tmp_path, server, framework, module, model_file):
    require(module)
    project = tmp_path / framework
    result = CliRunner().invoke(main, ["init", "managed", str(project), "--framework", framework])
    assert result.exit_code == 0, result.output
    out = run_commands(project, SCAFFOLDS["managed"].commands, server.url)
    assert json.loads(out.strip().splitlines()[-1]) == {"species": SPECIES}
    assert (project / "model" / model_file).exists()
    assert f"model/{model_file}" in (project / "README.md").read_text()


def test_only_the_managed_scaffold_takes_another_framework(tmp_path):
    result = CliRunner().invoke(main, ["init", "byoc", str(tmp_path / "p"), "--framework", "xgboost"])
    assert result.exit_code == 1
    assert "The byoc scaffold comes for sklearn, not xgboost." in result.output


def test_direct_scaffold_asks_each_container(deployed):
    answers = json.loads(deployed["direct"].strip().splitlines()[-1])
    assert answers == {"logistic": {"species": SPECIES}, "tree": {"species": SPECIES}}


def test_multi_model_scaffold_asks_each_model(deployed):
    answers = json.loads(deployed["multi-model"].strip().splitlines()[-1])
    assert answers == {name: {"species": SPECIES} for name in ("logistic", "tree", "knn")}


def test_keep_leaves_the_endpoint_for_the_user(tmp_path, server, sm):
    project = init(tmp_path, "byoc", "kept")
    done = subprocess.run([sys.executable, "deploy.py", "--endpoint-url", server.url, "--keep", "--name", "kept"],
                          cwd=project, check=True, capture_output=True, text=True, timeout=120)
    assert sm.describe_endpoint(EndpointName="kept")["EndpointStatus"] == "InService"
    delete = done.stdout.strip().splitlines()[-1].strip()
    assert delete == "dockyard delete kept --with-config-and-models"
    subprocess.run([sys.executable, "-m", *shlex.split(delete), "--endpoint-url", server.url], check=True,
                   capture_output=True, timeout=120)
    assert "kept" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert "kept" not in [m["ModelName"] for m in sm.list_models()["Models"]]


def test_deploy_never_touches_an_existing_endpoint_of_the_same_name(tmp_path, server, sm):
    """The README's quick start made an ``iris`` endpoint; a scaffold run must leave it alone,
    with or without --name."""
    tarball = package(tmp_path, iris_classifier()).as_uri()
    create_endpoint(sm, "iris", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball}})
    project = init(tmp_path, "managed", "x")
    run_commands(project, ("python train.py",), server.url)
    clash = subprocess.run([sys.executable, "deploy.py", "--endpoint-url", server.url, "--name", "iris"], cwd=project,
                           capture_output=True, text=True, timeout=120, check=False)
    assert clash.returncode != 0
    assert 'Cannot create already existing model' in clash.stderr
    own = run_commands(project, ("python deploy.py",), server.url)
    assert json.loads(own.strip().splitlines()[-1]) == {"species": SPECIES}
    assert sm.describe_endpoint(EndpointName="iris")["EndpointStatus"] == "InService"
    assert sm.describe_endpoint_config(EndpointConfigName="iris")["ProductionVariants"][0]["ModelName"] == "iris"
    assert sm.describe_model(ModelName="iris")["PrimaryContainer"]["ModelDataUrl"] == tarball
    delete_all(sm, "iris")


def test_generated_files_have_no_placeholders_and_serve_is_executable(tmp_path):
    for strategy, scaffold in SCAFFOLDS.items():
        project = init(tmp_path, strategy, f"My Project_{strategy}")
        for relative in scaffold.files:
            text = (project / relative).read_text()
            assert "__PROJECT__" not in text and "__SKLEARN_IMAGE__" not in text, relative
        if "serve" in scaffold.files:
            assert os.access(project / "serve", os.X_OK)
    assert "my-project-byoc" in (tmp_path / "My Project_byoc" / "deploy.py").read_text()


def test_extend_dockerfile_extends_the_managed_image(tmp_path):
    project = init(tmp_path, "extend", "ext")
    dockerfile = (project / "Dockerfile").read_text()
    assert "ARG BASE=683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:" in dockerfile
    assert "pip install --no-cache-dir -r /opt/ml/code/requirements.txt" in dockerfile
    assert (project / "model" / "code" / "requirements.txt").read_text().strip()


def test_init_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["init", "managed", str(tmp_path / "busy")])
    assert result.exit_code == 1
    assert "is not empty" in result.output and "--force" in result.output
    assert CliRunner().invoke(main, ["init", "managed", str(tmp_path / "busy"), "--force"]).exit_code == 0
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_init_rejects_an_invalid_endpoint_name(tmp_path):
    result = CliRunner().invoke(main, ["init", "byoc", str(tmp_path / "p"), "--name", "no_underscores"])
    assert result.exit_code == 1
    assert "not a valid endpoint name" in result.output


def test_project_names_are_valid_endpoint_names(tmp_path):
    assert project_name(tmp_path / "My Model_v2") == "my-model-v2"
    assert project_name(tmp_path / "___") == "dockyard-project"
    assert len(project_name(tmp_path / ("x" * 100))) == 63

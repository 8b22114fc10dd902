"""Images with a real container engine. ``dockyard check IMAGE``: the managed scikit-learn image and
the images of the BYOC and Extend scaffolds pass, including the image-only checks (8080 by default,
SAGEMAKER_BIND_TO_PORT on a second run, the model mounted read-only); broken images fail naming the
check. And the scaffolds' images deploy with ``deploy.py --image`` on a docker-runtime dockyard."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from check_helpers import run_check, statuses
from e2e.models import SKLEARN_URI, iris_classifier
from servers import Server

from dockyard.images.build import BuildOptions, build, run_build
from dockyard.images.build_base import image_present, local_base
from dockyard.strategy.scaffolds import SCAFFOLDS, render

pytestmark = [pytest.mark.docker, pytest.mark.slow]


FAST = ["--startup-timeout", "30", "--stop-grace", "5", "--concurrency", "4"]


def _report(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="module")
def sklearn_image(engine: Any, base_image: str | None) -> str:
    if not image_present(engine, SKLEARN_URI) or local_base(engine) is None:
        build(engine, ["sklearn"], BuildOptions(), _report)
    return SKLEARN_URI


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    joblib.dump(iris_classifier(), directory / "model.joblib")
    return directory


def byoc_image(engine: Any, project: Path, tag: str) -> str:
    run_build(engine, _report, path=str(project), tag=tag, buildargs={"BASE": local_base(engine)})
    return tag


def test_the_managed_sklearn_image_honours_the_contract(sklearn_image, model_dir):
    code, report = run_check(*FAST, sklearn_image, "--model-dir", str(model_dir))
    assert code == 0, report
    assert report["runtime"] == "docker"
    # Managed images carry the multi-models label and serve /models: every check runs and passes.
    assert {k for k, v in statuses(report).items() if v != "pass"} == set()
    assert statuses(report)["multi-model"] == "pass"


@pytest.fixture(scope="module")
def byoc_project(engine: Any, sklearn_image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    project = tmp_path_factory.mktemp("images") / "byoc"
    render(SCAFFOLDS["byoc"], project)
    return project, byoc_image(engine, project, "dockyard-tests/check-byoc:latest")


@pytest.fixture(scope="module")
def extend_project(engine: Any, sklearn_image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    project = tmp_path_factory.mktemp("images") / "extend"
    render(SCAFFOLDS["extend"], project)
    joblib.dump(iris_classifier(), project / "model" / "model.joblib")
    run_build(engine, _report, path=str(project), tag="dockyard-tests/check-extend:latest")
    return project, "dockyard-tests/check-extend:latest"


@pytest.fixture(scope="module")
def docker_server(tmp_path_factory: pytest.TempPathFactory, sklearn_image: str) -> Iterator[str]:
    """A ``dockyard serve`` on the docker runtime."""
    root = tmp_path_factory.mktemp("docker-server")
    server = Server(root / "state", root / "server.log", {"DOCKYARD_RUNTIME": "docker"}).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_the_byoc_scaffold_image_honours_the_contract(byoc_project):
    project, image = byoc_project
    code, report = run_check(*FAST, image, "--model-dir", str(project / "model"))
    assert code == 0, report
    assert statuses(report)["model-read-only"] == statuses(report)["bind-port"] == "pass"


def test_an_image_that_ignores_sagemaker_bind_to_port_fails_bind_port(engine, sklearn_image, tmp_path):
    project = tmp_path / "fixed-port"
    render(SCAFFOLDS["byoc"], project)
    serve = project / "serve"
    serve.write_text(serve.read_text().replace('int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))', "8080"))
    image = byoc_image(engine, project, "dockyard-tests/check-fixed-port:latest")
    code, report = run_check(*FAST, image, "--model-dir", str(project / "model"), "--startup-timeout", "3")
    assert code == 1
    assert report["failed"] == ["bind-port"]
    assert statuses(report)["default-port"] == "pass"


def test_a_shell_entrypoint_that_swallows_sigterm_fails_sigterm(engine, sklearn_image, tmp_path):
    project = tmp_path / "shell"
    render(SCAFFOLDS["byoc"], project)
    (project / "serve").rename(project / "server.py")
    # No `exec`: the shell stays PID 1, and PID 1 ignores SIGTERM unless it handles it.
    (project / "serve").write_text('#!/bin/sh\npython3 /opt/program/server.py "$@"\n')
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "COPY serve /opt/program/serve", "COPY serve server.py /opt/program/"))
    image = byoc_image(engine, project, "dockyard-tests/check-shell:latest")
    code, report = run_check(*FAST, image, "--model-dir", str(project / "model"), "--stop-grace", "2")
    assert code == 1
    assert report["failed"] == ["sigterm"]


def test_the_extend_scaffold_image_builds_on_the_managed_image_and_passes(extend_project):
    project, image = extend_project
    code, report = run_check(*FAST, image, "--model-dir", str(project / "model"))
    assert code == 0, report
    assert '{"species": ["setosa"]}' in next(c for c in report["checks"] if c["id"] == "invocations")["detail"]


@pytest.mark.parametrize("which", ["byoc", "extend"])
def test_the_scaffold_image_deploys_on_the_docker_runtime(which, request, docker_server):
    project, image = request.getfixturevalue(f"{which}_project")
    if which == "extend":
        # deploy.py packs model/, as the README's steps leave it after train.py
        assert (project / "model" / "model.joblib").is_file()
    done = subprocess.run(
        [sys.executable, "deploy.py", "--endpoint-url", docker_server, "--image", image, "--name", f"image-{which}"],
        cwd=project, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"species": ["setosa", "versicolor", "virginica"]}


def test_the_byoc_multi_model_example_honours_the_contract(engine, sklearn_image, tmp_path):
    image = byoc_image(engine, Path(__file__).resolve().parents[2] / "examples" / "byoc-multi-model",
                       "dockyard-tests/byoc-mme:latest")
    (tmp_path / "name.txt").write_text("checked")
    code, report = run_check(*FAST, image, "--model-dir", str(tmp_path))
    assert code == 0, report
    assert statuses(report)["multi-model"] == "pass"

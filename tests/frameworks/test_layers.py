"""Extend without Docker: a requirements.txt next to inference.py is pip-installed into a cached
virtualenv layered on dockyard's environment; the second endpoint with the same requirements
reuses the layer without running pip; a requirement pip cannot install fails the endpoint with
pip's error in the FailureReason.

The module has a server of its own: layers live in the state dir, and other modules (tests/strategy)
install requirements too, so on the shared server the layer may already exist or its log have more
installs than these tests made."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from e2e.deploy import create_endpoint, delete_all, wait_settled
from servers import Server

from frameworks.deploy import invoke
from frameworks.models import SKLEARN_URI, package

# A tiny pure-Python package that dockyard's environment does not have.
REQUIREMENT = "text-unidecode==1.3"
INFERENCE = """
    from text_unidecode import unidecode  # from requirements.txt

    def model_fn(model_dir):
        return unidecode

    def transform_fn(model, input_data, content_type, accept):
        return model(input_data), "text/plain"
"""


def deploy(sm, tmp, name: str, requirements: str, wait: bool = True) -> dict:
    url = package(tmp, name, lambda d: None, {"inference.py": INFERENCE, "requirements.txt": requirements})
    return create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": url}}, wait=wait)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any, Any]]:
    """This module's server (its own state dir and log) and its SageMaker and runtime clients."""
    root = tmp_path_factory.mktemp("layers")
    srv = Server(root / "state", root / "server.log").start()
    yield srv, srv.client("sagemaker"), srv.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"})
    srv.stop()


@pytest.fixture(scope="module")
def layer(own, tmp_path_factory):
    server, sm, _ = own
    assert importlib.util.find_spec("text_unidecode") is None, "the test needs text-unidecode not installed here"
    deploy(sm, tmp_path_factory.mktemp("layer-a"), "layer-a", REQUIREMENT + "\n")
    # The one complete layer: a failed install (the last test's, whenever it ran) leaves no marker.
    [path] = [d for d in (server.state_dir / "layers").iterdir() if (d / ".dockyard-complete").is_file()]
    assert server.log().count(f"into layer {path.name}") == 1
    return path


@pytest.mark.index
def test_requirements_are_installed_for_inference_py(layer, own):
    _, _, rt = own
    content_type, body = invoke(rt, "layer-a", "Ünïcödé straße", ContentType="text/csv")
    assert (content_type, body.decode()) == ("text/plain", "Unicode strasse")
    assert (layer / ".dockyard-complete").is_file()


@pytest.mark.index
def test_second_endpoint_reuses_the_layer_without_pip(layer, own, tmp_path):
    server, sm, rt = own
    marker = layer / ".dockyard-complete"
    installed_at = marker.stat().st_mtime_ns
    deploy(sm, tmp_path, "layer-b", REQUIREMENT + "\n")
    _, body = invoke(rt, "layer-b", "Ålesund", ContentType="text/csv")
    assert body.decode() == "Alesund"
    log = server.log()
    assert log.count(f"into layer {layer.name}") == 1  # pip ran for layer-a only
    assert f"reusing layer {layer.name} for " in log
    assert marker.stat().st_mtime_ns == installed_at
    delete_all(sm, "layer-b")


def test_requirement_pip_cannot_install_fails_the_endpoint_with_pips_error(own, tmp_path):
    _, sm, _ = own
    deploy(sm, tmp_path, "layer-bad", "this is not a requirement!!\n", wait=False)
    desc = wait_settled(sm, "layer-bad", timeout=180)
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("The primary container for production variant AllTraffic could not install its "
                             "requirements.txt (pip install exited with code 1).")
    assert "Invalid requirement" in reason
    assert len(reason) <= 1024
    delete_all(sm, "layer-bad")



PLAIN = """
    def model_fn(model_dir):
        return "plain"

    def transform_fn(model, input_data, content_type, accept):
        return model, "text/plain"
"""


@pytest.mark.index
def test_each_model_of_a_multi_model_endpoint_gets_its_requirements(own, tmp_path):
    _, sm, rt = own
    prefix = tmp_path / "models"
    prefix.mkdir()
    for name, code in (("uni", {"inference.py": INFERENCE, "requirements.txt": REQUIREMENT + "\n"}),
                       ("plain", {"inference.py": PLAIN})):
        shutil.move(package(tmp_path, name, lambda d: None, code)[len("file://"):], prefix / f"{name}.tar.gz")
    create_endpoint(sm, "layer-mme", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": prefix.as_uri() + "/"}})
    try:
        _, body = invoke(rt, "layer-mme", "Ünïcödé straße", ContentType="text/csv", TargetModel="uni.tar.gz")
        assert body.decode() == "Unicode strasse"
        _, body = invoke(rt, "layer-mme", "x", ContentType="text/csv", TargetModel="plain.tar.gz")
        assert body.decode() == "plain"
    finally:
        delete_all(sm, "layer-mme")

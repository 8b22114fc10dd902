"""The managed server in multi-model mode: the /models API of the multi-model container contract."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import joblib
import pytest
from e2e.models import USES_REQUIREMENT, local_wheel
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from dockyard.serving.frameworks import load_framework
from dockyard.serving.layers import add_requirements
from dockyard.serving.multimodel import ModelRegistry
from dockyard.serving.server import build_app
from dockyard.serving.settings import Settings

NAMED = """
def model_fn(model_dir):
    return open(model_dir + "/name.txt").read()

def transform_fn(model, body, content_type, accept):
    return model, "text/plain"
"""


def model_dir(root: Path, name: str, code: str | None = NAMED) -> str:
    directory = root / name
    (directory / "code").mkdir(parents=True)
    (directory / "name.txt").write_text(name)
    if code is not None:
        (directory / "code" / "inference.py").write_text(code)
    else:
        x, y = load_iris(return_X_y=True)
        joblib.dump(LogisticRegression(max_iter=300).fit(x, y), directory / "model.joblib")
    return str(directory)


async def client_for(aiohttp_client, tmp_path: Path):
    settings = Settings(model_dir=str(tmp_path / "none"), multi_model=True, layers_dir=str(tmp_path / "layers"))
    return await aiohttp_client(build_app(settings, ModelRegistry(settings, load_framework("sklearn"))))


async def test_models_load_answer_by_name_list_in_pages_and_unload(aiohttp_client, tmp_path: Path) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    for name in ("a", "b", "c"):
        resp = await client.post("/models", json={"model_name": name, "url": model_dir(tmp_path, name)})
        assert resp.status == 200, await resp.text()
    again = await client.post("/models", json={"model_name": "a", "url": str(tmp_path / "a")})
    assert again.status == 409
    assert await (await client.post("/models/b/invoke", data=b"x")).text() == "b"
    by_header = await client.post("/invocations", data=b"x", headers={"X-Amzn-SageMaker-Target-Model": "c"})
    assert await by_header.text() == "c"
    first = await (await client.get("/models", params={"limit": "2"})).json()
    assert [m["modelName"] for m in first["models"]] == ["a", "b"] and first["nextPageToken"] == "2"
    rest = await (await client.get("/models", params={"limit": "2", "next_page_token": "2"})).json()
    assert [m["modelName"] for m in rest["models"]] == ["c"] and "nextPageToken" not in rest
    assert (await client.get("/models/a")).status == 200
    assert (await client.delete("/models/a")).status == 200
    assert (await client.get("/models/a")).status == 404
    assert (await client.post("/models/a/invoke", data=b"x")).status == 404
    assert (await client.delete("/models/a")).status == 404


async def test_a_model_with_the_framework_defaults_predicts(aiohttp_client, tmp_path: Path) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    resp = await client.post("/models", json={"model_name": "iris", "url": model_dir(tmp_path, "iris", code=None)})
    assert resp.status == 200, await resp.text()
    answer = await client.post("/models/iris/invoke", data=b"5.1,3.5,1.4,0.2",
                               headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert json.loads(await answer.text()) == [0]


async def test_bad_load_requests_name_the_problem(aiohttp_client, tmp_path: Path) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    missing = await client.post("/models", json={"model_name": "x", "url": str(tmp_path / "nowhere")})
    assert missing.status == 404 and "does not exist" in (await missing.json())["message"]
    bad = await client.post("/models", data=b"not json")
    assert bad.status == 400 and "model_name and url" in (await bad.json())["message"]


async def test_each_model_gets_its_requirements_installed_once(aiohttp_client, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the layers join this process's import path
    client = await client_for(aiohttp_client, tmp_path)
    for name, package in (("one", "dockyard_probe_one"), ("two", "dockyard_probe_two"), ("again", "dockyard_probe_one")):
        wheel = tmp_path / "wheels" / package / f"{package}-1.0-py3-none-any.whl"
        if not wheel.exists():
            wheel.parent.mkdir(parents=True)
            local_wheel(wheel.parent, package, f"value of {package}")
        directory = model_dir(tmp_path, name, USES_REQUIREMENT.format(package=package))
        Path(directory, "code", "requirements.txt").write_text(f"{wheel}\n")
        resp = await client.post("/models", json={"model_name": name, "url": directory})
        assert resp.status == 200, await resp.text()
    assert await (await client.post("/models/one/invoke", data=b"x")).text() == "value of dockyard_probe_one"
    assert await (await client.post("/models/two/invoke", data=b"x")).text() == "value of dockyard_probe_two"
    assert await (await client.post("/models/again/invoke", data=b"x")).text() == "value of dockyard_probe_one"
    # "again" has one's requirements (the same wheel path): one layer each for one and two.
    assert len([d for d in (tmp_path / "layers").iterdir() if d.is_dir()]) == 2


async def test_requirements_pip_cannot_install_fail_the_load_with_pips_error(aiohttp_client, tmp_path: Path) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    directory = model_dir(tmp_path, "bad")
    Path(directory, "code", "requirements.txt").write_text("this is not a requirement!!\n")
    resp = await client.post("/models", json={"model_name": "bad", "url": directory})
    assert resp.status == 500
    message = (await resp.json())["message"]
    assert message.startswith("Failed to load model bad: could not install its code/requirements.txt "
                              "(pip install exited with code 1: ")
    assert "Invalid requirement" in message
    assert [d for d in (tmp_path / "layers").iterdir() if d.is_dir()] == []  # no half-installed layer left
    assert (await client.get("/models/bad")).status == 404


def test_an_install_killed_midway_is_cleared_by_the_next_install_of_its_layer(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the layer joins this process's import path
    local_wheel(tmp_path, "dockyard_probe_killed", "v")
    directory = model_dir(tmp_path, "m", USES_REQUIREMENT.format(package="dockyard_probe_killed"))
    Path(directory, "code", "requirements.txt").write_text(f"{tmp_path / 'dockyard_probe_killed-1.0-py3-none-any.whl'}\n")
    layers_dir = tmp_path / "layers"
    layer = Path(add_requirements(directory, str(layers_dir)) or "")
    assert (layer / "dockyard_probe_killed" / "__init__.py").is_file()
    # What a killed pip leaves: its temporary directory (KEY.RANDOM), and no layer.
    shutil.rmtree(layer)
    (layers_dir / f"{layer.name}.k1ll3d" / "half").mkdir(parents=True)
    (layers_dir / "0123456789abcdef.other").mkdir()  # another key's: not this install's to remove
    assert add_requirements(directory, str(layers_dir)) == str(layer)
    assert sorted(p.name for p in layers_dir.iterdir() if p.is_dir()) == ["0123456789abcdef.other", layer.name]
    assert (layer / "dockyard_probe_killed" / "__init__.py").is_file()

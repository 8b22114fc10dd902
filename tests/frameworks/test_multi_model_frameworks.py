"""Multi-model endpoints on the managed XGBoost, PyTorch and TensorFlow servers: one endpoint per
framework, a prefix of tiny iris models loaded on demand through the multi-model container
contract — one with the framework's default handlers, one with its own ``code/inference.py`` —
each answering as that model does here in the test."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from e2e.deploy import create_endpoint, delete_all
from needs import require

from frameworks.deploy import invoke
from frameworks.models import PYTORCH_URI, ROWS, TENSORFLOW_URI, XGBOOST_URI, csv, iris, iris_booster, iris_keras, iris_net, package

# A model's own handlers: class labels, tagged with the model's name, as JSON.
LABELS = """
    import json

    def output_fn(prediction, accept):
        return json.dumps({{"model": "labels", "labels": {argmax}.tolist()}}), "application/json"
"""
XGBOOST_LABELS = LABELS.format(argmax="prediction.argmax(axis=1)")
TORCH_LABELS = LABELS.format(argmax="prediction.argmax(dim=1)")
# TensorFlow Serving's handler protocol: CSV rows in, labels out of the predictions it answered.
TENSORFLOW_LABELS = """
    import json

    def input_handler(data, context):
        return json.dumps({"instances": [list(map(float, row.split(","))) for row in data.read().decode().split()]})

    def output_handler(response, context):
        labels = [max(range(3), key=p.__getitem__) for p in response.json()["predictions"]]
        return json.dumps({"model": "labels", "labels": labels}), "application/json"
"""


def prefix_of(tmp: Path, models: dict[str, tuple[Callable[[Path], object], dict[str, str] | None]]) -> str:
    """A model data prefix holding ``<name>.tar.gz`` per model; its ``file://`` URL."""
    prefix = tmp / "models"
    prefix.mkdir()
    for name, (write, code) in models.items():
        shutil.move(package(tmp, name, write, code)[len("file://"):], prefix / f"{name}.tar.gz")
    return prefix.as_uri() + "/"


@pytest.fixture
def endpoint(sm):
    """Deploys one multi-model endpoint named after the test's framework; deleted after."""
    names: list[str] = []

    def deploy(name: str, image: str, prefix: str) -> str:
        create_endpoint(sm, name, {"PrimaryContainer": {"Image": image, "Mode": "MultiModel", "ModelDataUrl": prefix}})
        names.append(name)
        return name

    yield deploy
    for name in names:
        delete_all(sm, name)


def test_xgboost_models_load_on_demand(endpoint, rt, tmp_path):
    xgb = require("xgboost")
    x, y = iris()
    booster = iris_booster()
    shallow = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 1, "seed": 0},
                        xgb.DMatrix(x, label=y), 2)
    name = endpoint("mme-xgb", XGBOOST_URI, prefix_of(tmp_path, {
        "booster": (lambda d: (d / "xgboost-model").write_bytes(booster.save_raw("ubj")), None),
        "shallow": (lambda d: (d / "xgboost-model").write_bytes(shallow.save_raw("ubj")), None),
        "labels": (lambda d: (d / "xgboost-model").write_bytes(booster.save_raw("ubj")), {"inference.py": XGBOOST_LABELS}),
    }))
    for target, model in (("booster.tar.gz", booster), ("shallow.tar.gz", shallow)):
        content_type, body = invoke(rt, name, csv(x[ROWS]), ContentType="text/csv", TargetModel=target)
        assert content_type == "text/csv"
        np.testing.assert_allclose(np.loadtxt(io.StringIO(body.decode()), delimiter=","),
                                   model.predict(xgb.DMatrix(x[ROWS])), rtol=1e-6)
    _, body = invoke(rt, name, csv(x[ROWS]), ContentType="text/csv", TargetModel="labels.tar.gz")
    labels = np.argmax(booster.predict(xgb.DMatrix(x[ROWS])), axis=1).tolist()
    assert json.loads(body) == {"model": "labels", "labels": labels}


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_pytorch_models_load_on_demand(endpoint, rt, tmp_path):
    torch = require("torch")
    x, _ = iris()
    net = iris_net()
    name = endpoint("mme-torch", PYTORCH_URI, prefix_of(tmp_path, {
        "script": (lambda d: torch.jit.script(net).save(str(d / "model.pt")), None),
        "labels": (lambda d: torch.jit.script(net).save(str(d / "model.pt")), {"inference.py": TORCH_LABELS}),
    }))
    with torch.no_grad():
        logits = net(torch.from_numpy(x[ROWS])).numpy()
    _, body = invoke(rt, name, json.dumps(x[ROWS].tolist()), ContentType="application/json",
                     Accept="application/json", TargetModel="script.tar.gz")
    np.testing.assert_allclose(json.loads(body), logits, rtol=1e-5, atol=1e-5)
    _, body = invoke(rt, name, json.dumps(x[ROWS].tolist()), ContentType="application/json", TargetModel="labels.tar.gz")
    assert json.loads(body) == {"model": "labels", "labels": logits.argmax(axis=1).tolist()}


def test_tensorflow_models_load_on_demand(endpoint, rt, tmp_path):
    require("tensorflow")
    x, _ = iris()
    model = iris_keras()
    name = endpoint("mme-tf", TENSORFLOW_URI, prefix_of(tmp_path, {
        "keras": (lambda d: model.export(str(d / "1"), verbose=False), None),
        "labels": (lambda d: model.export(str(d / "1"), verbose=False), {"inference.py": TENSORFLOW_LABELS}),
    }))
    want = model.predict(x[ROWS], verbose=0)
    _, body = invoke(rt, name, json.dumps({"instances": x[ROWS].tolist()}), ContentType="application/json",
                     TargetModel="keras.tar.gz")
    np.testing.assert_allclose(json.loads(body)["predictions"], want, rtol=1e-5, atol=1e-6)
    _, body = invoke(rt, name, csv(x[ROWS]), ContentType="text/csv", TargetModel="labels.tar.gz")
    assert json.loads(body) == {"model": "labels", "labels": want.argmax(axis=1).tolist()}

"""Tiny XGBoost, PyTorch and Keras models trained in the tests (no downloads), packaged as model data.

Every model learns iris, so predictions can be checked against the model's own, in the test.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from dockyard.artifacts.package import make_model_tarball

# The image URIs the SageMaker SDK generates, in assorted accounts, regions and tag styles.
XGBOOST_URI = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
PYTORCH_URI = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"
PYTORCH_GPU_URI = "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.1-gpu-py310"
TENSORFLOW_URI = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu"
SKLEARN_URI = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

ROWS = [0, 25, 50, 75, 100, 125, 149]


def iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def package(tmp: Path, name: str, write: Callable[[Path], object], code: dict[str, str] | None = None) -> str:
    """``file://`` URL of a model.tar.gz: what ``write(dir)`` puts in it, plus ``code/`` files."""
    source = tmp / f"{name}-src"
    source.mkdir(parents=True)
    write(source)
    for filename, text in (code or {}).items():
        (source / "code").mkdir(exist_ok=True)
        (source / "code" / filename).write_text(textwrap.dedent(text))
    return make_model_tarball(source, tmp / f"{name}.tar.gz").as_uri()


def csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def iris_booster(x: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    """An XGBoost booster giving class probabilities (multi:softprob) for iris (or ``x``)."""
    import xgboost as xgb

    features, labels = iris()
    data = xgb.DMatrix(features if x is None else x, label=labels)
    return xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "seed": 0}, data, 8)


def iris_net():  # type: ignore[no-untyped-def]
    """A small PyTorch classifier (logits) for iris, trained for a few hundred steps."""
    import torch

    torch.manual_seed(0)
    x, y = iris()
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), targets).backward()
        optimiser.step()
    return net.eval()


def iris_keras():  # type: ignore[no-untyped-def]
    """A small Keras classifier (softmax) for iris, input named ``features``."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = iris()
    model = keras.Sequential([
        keras.Input((4,), name="features"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return model

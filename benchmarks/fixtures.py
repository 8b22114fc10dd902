"""The models every server is benchmarked with, made on the spot (no downloads).

- ``noop``: an ``inference.py`` whose ``transform_fn`` hands the body back — the container does
  almost nothing, so what is measured is HTTP and the gateway.
- ``iris``: scikit-learn's ``LogisticRegression`` on the bundled iris data set, saved as
  ``model.joblib``; the same file is served by dockyard, MLServer and KServe.
"""

from __future__ import annotations

import json
from pathlib import Path

from dockyard.artifacts.package import make_model_tarball

NOOP_INFERENCE = '''\
"""Echo: the response is the request, with its Content-Type."""


def model_fn(model_dir):
    return None


def transform_fn(model, data, content_type, accept):
    return data, content_type
'''

# One iris row; each server gets it in its own protocol's JSON.
ROW = [5.1, 3.5, 1.4, 0.2]
SAGEMAKER_BODY = json.dumps([ROW]).encode()
JSON_HEADERS = (("Content-Type", "application/json"), ("Accept", "application/json"))


def noop_model_dir(root: Path) -> Path:
    directory = root / "noop"
    (directory / "code").mkdir(parents=True, exist_ok=True)
    (directory / "code" / "inference.py").write_text(NOOP_INFERENCE)
    return directory


def iris_model_dir(root: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    directory = root / "iris"
    directory.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), directory / "model.joblib")
    return directory


def tarball(directory: Path) -> Path:
    return make_model_tarball(directory, directory.parent / f"{directory.name}.tar.gz")

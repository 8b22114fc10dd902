"""Tiny models trained in the tests (no downloads) and packaged as SageMaker model data."""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from dockyard.artifacts.package import make_model_tarball

SKLEARN_URI = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


def iris_classifier() -> LogisticRegression:
    x, y = iris()
    return LogisticRegression(max_iter=500).fit(x, y)


def package(tmp: Path, model: object | None = None, inference_py: str | None = None, name: str = "model") -> Path:
    """model.tar.gz with ``model.joblib`` and, optionally, ``code/inference.py``."""
    source = tmp / f"{name}-src"
    source.mkdir(parents=True)
    if model is not None:
        joblib.dump(model, source / "model.joblib")
    if inference_py is not None:
        (source / "code").mkdir()
        (source / "code" / "inference.py").write_text(textwrap.dedent(inference_py))
    return make_model_tarball(source, tmp / f"{name}.tar.gz")


def csv_stage_inference(method: str) -> str:
    """inference.py for a pipeline stage: ``model.<method>(data)``, answered as CSV rows whatever
    the client accepts, so the next container of a Serial pipeline reads CSV."""
    return f"""
    import io

    import numpy as np

    def predict_fn(data, model):
        return model.{method}(data)

    def output_fn(prediction, accept):
        buf = io.StringIO()
        np.savetxt(buf, prediction, delimiter=",", fmt="%.17g")
        return buf.getvalue(), "text/csv"
"""


def local_wheel(root: Path, package: str, value: str) -> Path:
    """A pure-Python wheel of ``package`` (``VALUE = value``) that pip installs with no index."""
    dist = f"{package}-1.0.dist-info"
    path = root / f"{package}-1.0-py3-none-any.whl"
    files = {
        f"{package}/__init__.py": f"VALUE = {value!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{dist}/RECORD"])
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


# inference.py of a model that imports ``package`` (from its code/requirements.txt) and answers
# its VALUE as text/plain.
USES_REQUIREMENT = """
from {package} import VALUE  # from code/requirements.txt

def model_fn(model_dir):
    return VALUE

def transform_fn(model, body, content_type, accept):
    return model, "text/plain"
"""

"""scikit-learn: load ``model.joblib`` / ``model.pkl`` with joblib and call ``model.predict``.

SageMaker's own scikit-learn container insists on a user ``model_fn``; like KServe and MLServer,
dockyard loads a saved model by default. Loading a pickle runs whatever code the pickle names, so
only serve models from sources you trust, or set DOCKYARD_RESTRICTED_UNPICKLE=true (see
``dockyard.serving.safe_unpickle``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.serving.frameworks.base import Framework
from dockyard.serving.settings import Settings

_PREFERRED = ("model.joblib", "model.pkl")
_SUFFIXES = (".joblib", ".pkl")


def find_model_file(model_dir: Path) -> Path:
    """``model.joblib``, else ``model.pkl``, else the only ``*.joblib`` or ``*.pkl`` there."""
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    for name in _PREFERRED:
        if (model_dir / name).is_file():
            return model_dir / name
    candidates = sorted(p for p in model_dir.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FileNotFoundError(f"no model.joblib or model.pkl in {model_dir}")
    raise FileNotFoundError(
        f"several model files in {model_dir} ({', '.join(p.name for p in candidates)}); "
        "name the one to serve model.joblib, or define model_fn in inference.py"
    )


def model_fn(model_dir: str, settings: Settings) -> Any:
    """The estimator saved in ``model_dir``."""
    path = find_model_file(Path(model_dir))
    if settings.restricted_unpickle:
        from dockyard.serving.safe_unpickle import restricted_load

        return restricted_load(path)
    import joblib

    return joblib.load(path)


def predict_fn(data: Any, model: Any) -> Any:
    """``model.predict(data)``; override predict_fn for ``predict_proba`` and the like."""
    return model.predict(data)


FRAMEWORK = Framework(
    name="sklearn",
    model_fn=model_fn,
    predict_fn=predict_fn,
    # What unpickling the usual estimators imports (joblib, numpy, scipy and these subpackages).
    preload=(
        "joblib", "numpy", "sklearn", "sklearn.linear_model", "sklearn.tree", "sklearn.ensemble",
        "sklearn.pipeline", "sklearn.preprocessing", "sklearn.svm", "sklearn.neighbors",
    ),
)

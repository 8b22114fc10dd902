"""BYOM: a model saved anywhere → the ``model.tar.gz`` its framework's managed image loads.

Each framework's image looks for the model under one name at the archive's root: scikit-learn
``model.joblib`` (or ``model.pkl``), XGBoost ``xgboost-model``, PyTorch ``model.pt``, TensorFlow
Serving a SavedModel inside a numbered version directory (``1/``). User code goes under ``code/``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.artifacts.package import make_model_tarball
from dockyard.images.catalogue import CATALOGUE

SAVED_MODEL = "saved_model.pb"


@dataclass(frozen=True)
class Layout:
    """Where a framework's image finds the model in model.tar.gz."""

    # Archive name for a saved model file, by its suffix ("" = any other suffix).
    file_names: Mapping[str, str] = field(default_factory=dict)
    # Suffixes that identify this framework's model files when --framework is not given.
    suffixes: tuple[str, ...] = ()
    # A SavedModel directory goes into a version directory of this name.
    version_dir: str | None = None


LAYOUTS: Mapping[str, Layout] = {
    "sklearn": Layout({".pkl": "model.pkl", "": "model.joblib"}, (".joblib", ".pkl")),
    # The SageMaker XGBoost container loads the file named xgboost-model, whatever its format.
    "xgboost": Layout({"": "xgboost-model"}, (".ubj", ".bst", ".xgb")),
    # TorchScript; the PyTorch container loads model.pt when no model_fn is given.
    "pytorch": Layout({"": "model.pt"}, (".pt", ".pth")),
    "tensorflow": Layout(version_dir="1"),
}


class PackageError(Exception):
    """The model cannot be packaged; ``str(e)`` says why and what to do."""


def frameworks() -> tuple[str, ...]:
    """Frameworks with both a managed image and a known model layout."""
    return tuple(m.framework for m in CATALOGUE if m.framework in LAYOUTS)


def guess_framework(model: Path) -> str:
    """The framework a saved model belongs to, from its name; PackageError when it is ambiguous."""
    if model.is_dir():
        if (model / SAVED_MODEL).is_file() or any((d / SAVED_MODEL).is_file() for d in model.iterdir() if d.is_dir()):
            return "tensorflow"
        raise PackageError(f"{model} is a directory without a TensorFlow SavedModel ({SAVED_MODEL}).")
    if model.name == "xgboost-model":
        return "xgboost"
    for name, layout in LAYOUTS.items():
        if model.suffix in layout.suffixes:
            return name
    raise PackageError(f"Cannot tell the framework of {model.name} from its name: pass --framework.")


def _stage(model: Path, framework: str, layout: Layout, root: Path) -> None:
    if layout.version_dir is not None:
        if not model.is_dir():
            raise PackageError(f"A {framework} model is a SavedModel directory; {model} is a file.")
        if (model / SAVED_MODEL).is_file():
            shutil.copytree(model, root / layout.version_dir)
            return
        versions = [d for d in model.iterdir() if d.is_dir() and d.name.isdigit() and (d / SAVED_MODEL).is_file()]
        if not versions:
            raise PackageError(f"{model} holds no {SAVED_MODEL}, directly or in a numbered version directory.")
        for version in versions:
            shutil.copytree(version, root / version.name)
        return
    if not model.is_file():
        raise PackageError(f"A {framework} model is a single saved file; {model} is not a file.")
    name = layout.file_names.get(model.suffix, layout.file_names[""])
    shutil.copy2(model, root / name)


def package_model(model: Path, output: Path, framework: str | None = None, code: Path | None = None) -> tuple[str, list[str]]:
    """Write ``output``; return the framework and the archive's top-level entries."""
    if not model.exists():
        raise PackageError(f"Could not find the model {model}.")
    framework = framework or guess_framework(model)
    layout = LAYOUTS.get(framework)
    if layout is None:
        raise PackageError(f"No known model layout for framework {framework!r}; known: {', '.join(frameworks())}.")
    if code is not None and not code.is_dir():
        raise PackageError(f"--code {code} is not a directory.")
    with tempfile.TemporaryDirectory(prefix="dockyard-package-") as tmp:
        root = Path(tmp)
        _stage(model, framework, layout, root)
        if code is not None:
            shutil.copytree(code, root / "code", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        entries = sorted(p.name for p in root.iterdir())
        make_model_tarball(root, output)
    return framework, entries

"""``dockyard init`` scaffolds: which template files make up each project, and writing them out.

The templates are real files under ``templates/`` (valid Python, Dockerfiles, READMEs), shared
between scaffolds where the code is the same. Two placeholders are replaced when a project is
written: ``__PROJECT__`` (the endpoint name) and ``__SKLEARN_IMAGE__`` (the managed scikit-learn
image's AWS URI, from the image catalogue). The managed scaffold comes in one flavour per managed
framework (``--framework``): ``__IMAGE__``, ``__FRAMEWORK__`` and ``__MODEL_FILE__`` name the
flavour's image, framework and the model file its ``train.py`` writes.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.images import catalogue

TEMPLATES = Path(__file__).resolve().parent / "templates"
# SageMaker resource names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
NAME_LENGTH = 63


@dataclass(frozen=True)
class Flavour:
    """A framework's version of a scaffold: its title, the model file train.py writes, and the
    templates that replace the scikit-learn ones."""

    title: str
    model_file: str
    files: Mapping[str, str] = field(default_factory=dict)


SKLEARN = Flavour("scikit-learn", "model.joblib")


def _framework(framework: str, title: str, model_file: str) -> Flavour:
    return Flavour(title, model_file, {"train.py": f"managed/{framework}/train.py",
                                       "model/code/inference.py": f"managed/{framework}/inference.py"})


@dataclass(frozen=True)
class Scaffold:
    name: str
    summary: str
    # Path in the project → template path under templates/.
    files: Mapping[str, str]
    # The commands that deploy the project and print a prediction, run from its directory.
    commands: tuple[str, ...]
    # Framework → its flavour of this scaffold; scikit-learn only, unless listed.
    flavours: Mapping[str, Flavour] = field(default_factory=lambda: {"sklearn": SKLEARN})


_SHARED = {"endpoint.py": "shared/endpoint.py"}
_TRAIN_AND_DEPLOY = ("python train.py", "python deploy.py")

SCAFFOLDS: Mapping[str, Scaffold] = {
    s.name: s
    for s in (
        Scaffold(
            "managed", "a scikit-learn model and inference.py on the managed image",
            {**_SHARED, "README.md": "managed/README.md", "train.py": "shared/train.py",
             "model/code/inference.py": "shared/inference.py", "deploy.py": "shared/deploy.py"},
            _TRAIN_AND_DEPLOY,
            {"sklearn": SKLEARN, "xgboost": _framework("xgboost", "XGBoost", "xgboost-model"),
             "pytorch": _framework("pytorch", "PyTorch", "model.pt"),
             "tensorflow": _framework("tensorflow", "TensorFlow", "1")},
        ),
        Scaffold(
            "extend", "the managed image plus extra libraries: Dockerfile FROM it, requirements.txt",
            {**_SHARED, "README.md": "extend/README.md", "Dockerfile": "extend/Dockerfile",
             "train.py": "shared/train.py", "model/code/inference.py": "extend/inference.py",
             "model/code/requirements.txt": "extend/requirements.txt", "deploy.py": "shared/deploy.py"},
            _TRAIN_AND_DEPLOY,
        ),
        Scaffold(
            "byoc", "your own container: a stdlib-only server with a serve executable, and a Dockerfile",
            {**_SHARED, "README.md": "byoc/README.md", "serve": "byoc/serve", "model/model.json": "byoc/model.json",
             "Dockerfile": "byoc/Dockerfile", "deploy.py": "byoc/deploy.py"},
            ("python deploy.py",),
        ),
        Scaffold(
            "byom", "a model trained elsewhere, packaged by `dockyard package` for the managed image",
            {**_SHARED, "README.md": "byom/README.md", "train.py": "shared/train.py",
             "code/inference.py": "shared/inference.py", "deploy.py": "byom/deploy.py"},
            (
                "python train.py",
                "dockyard package model/model.joblib --framework sklearn --code code --output build/model.tar.gz",
                "python deploy.py",
            ),
        ),
        Scaffold(
            "pipeline", "a multi-container endpoint, Serial: preprocess → classifier",
            {**_SHARED, "README.md": "pipeline/README.md", "train.py": "pipeline/train.py",
             "preprocess/code/inference.py": "pipeline/preprocess.py",
             "classifier/code/inference.py": "shared/inference.py", "deploy.py": "pipeline/deploy.py"},
            _TRAIN_AND_DEPLOY,
        ),
        Scaffold(
            "direct", "a multi-container endpoint, Direct: two models, picked per request",
            {**_SHARED, "README.md": "direct/README.md", "train.py": "direct/train.py",
             "logistic/code/inference.py": "shared/inference.py", "tree/code/inference.py": "shared/inference.py",
             "deploy.py": "direct/deploy.py"},
            _TRAIN_AND_DEPLOY,
        ),
        Scaffold(
            "multi-model", "a multi-model endpoint: three models under one prefix, picked by TargetModel",
            {**_SHARED, "README.md": "multimodel/README.md", "train.py": "multimodel/train.py",
             **{f"models/{m}/code/inference.py": "shared/inference.py" for m in ("logistic", "tree", "knn")},
             "deploy.py": "multimodel/deploy.py"},
            _TRAIN_AND_DEPLOY,
        ),
    )
}


class ScaffoldError(Exception):
    """The project cannot be written; ``str(e)`` says why and what to do."""


def project_name(directory: Path) -> str:
    """A valid SageMaker resource name from a directory name: ``My Model_1`` → ``my-model-1``."""
    name = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    return name[:NAME_LENGTH].rstrip("-") or "dockyard-project"


def managed_image(framework: str = "sklearn") -> str:
    """The AWS URI of a managed framework's image (scikit-learn's is the one most scaffolds use)."""
    image = next((m for m in catalogue.CATALOGUE if m.framework == framework), None)
    if image is None:
        raise ScaffoldError(f"The image catalogue has no managed {framework} image, which the scaffold uses.")
    return image.example_uri


def render(scaffold: Scaffold, directory: Path, name: str | None = None, force: bool = False,
           framework: str = "sklearn") -> list[Path]:
    """Write ``scaffold`` (its ``framework`` flavour) into ``directory``; return the files written."""
    flavour = scaffold.flavours.get(framework)
    if flavour is None:
        raise ScaffoldError(f"The {scaffold.name} scaffold comes for {', '.join(scaffold.flavours)}, not {framework}.")
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a directory.")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ScaffoldError(f"{directory} is not empty: choose a new directory, or pass --force to write into it.")
    name = name or project_name(directory)
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name):
        raise ScaffoldError(f"{name!r} is not a valid endpoint name: letters, digits and hyphens, at most 63.")
    values = {"__PROJECT__": name, "__SKLEARN_IMAGE__": managed_image(), "__IMAGE__": managed_image(framework),
              "__FRAMEWORK__": flavour.title, "__MODEL_FILE__": flavour.model_file}
    written = []
    for relative, template in {**scaffold.files, **flavour.files}.items():
        text = (TEMPLATES / template).read_text()
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        dest = directory / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        if relative == "serve":
            # The container contract runs `serve`: it must be executable.
            dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(dest)
    return written

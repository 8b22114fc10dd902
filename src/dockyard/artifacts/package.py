"""Packaging model data the way SageMaker expects it: one gzip'd tar, files at its root,
user code under ``code/``."""

from __future__ import annotations

import tarfile
from pathlib import Path


def make_model_tarball(source_dir: Path, dest: Path) -> Path:
    """Write ``dest`` (a model.tar.gz) holding the contents of ``source_dir`` at its root."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(source_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source_dir)), recursive=False)
    return dest

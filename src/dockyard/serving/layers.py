"""A model's own requirements in a multi-model container: its ``code/requirements.txt``,
pip-installed when the model loads into a layer ``<layers dir>/<key>``, which then joins the
import path.

The key hashes the requirements and the interpreter, so models with the same requirements share
one layer and pip runs once for them — across containers too: the process runtime gives every
multi-model container of a server one layers directory (``DOCKYARD_LAYERS_DIR``), so a replacement
instance, or another endpoint's, finds the layer installed. A file lock per key (``flock``: it
excludes threads and processes alike) keeps two loads from installing one layer at once; pip
installs into a temporary directory renamed into place only when it succeeds, so a layer that
exists is complete (what a killed install left behind is removed by the next one). The layer goes
at the END of the import path: the models of one container share one Python process, so a package
the server (or a model loaded earlier) already has is used as it is; a layer adds what is missing.
In an image the directory is under /tmp, the container's own.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("dockyard.serving")

REQUIREMENTS = os.path.join("code", "requirements.txt")
# pip's limit: within the platform's wait for a load to answer (dockyard's: 120 s).
PIP_TIMEOUT = 100.0
# The tail of pip's output that a failed install reports.
_TAIL = 600


class LayerError(Exception):
    """pip could not install a model's requirements; the message ends with pip's last words."""


def add_requirements(model_dir: str, layers_dir: str) -> str | None:
    """Make ``model_dir``'s ``code/requirements.txt`` importable (installed first unless its layer
    exists); the layer's directory, or None for a model without requirements. Blocking."""
    requirements = os.path.join(model_dir, REQUIREMENTS)
    if not os.path.isfile(requirements):
        return None
    with open(requirements, "rb") as f:
        key = hashlib.sha256(f"{sys.prefix}\0{sys.version}\0".encode() + f.read()).hexdigest()[:16]
    layer = os.path.join(layers_dir, key)
    with _locked(layer + ".lock"):
        if os.path.isdir(layer):
            log.info("model %s: reusing layer %s (pip not run)", model_dir, key)
        else:
            log.info("model %s: installing %s into layer %s", model_dir, requirements, key)
            _install(requirements, layers_dir, layer)
    if layer not in sys.path:
        sys.path.append(layer)
        importlib.invalidate_caches()  # a finder may have cached the directory's absence
    return layer


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold the exclusive lock of file ``path`` (created if need be) for the block."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # Read-only is enough for flock, and opens a lock file another user (an earlier server's
    # containers) created.
    fd = os.open(path, os.O_CREAT | os.O_RDONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _install(requirements: str, layers_dir: str, layer: str) -> None:
    for stale in glob.glob(glob.escape(layer) + ".*/"):  # an install killed midway (we hold the key's lock)
        shutil.rmtree(stale, ignore_errors=True)
    partial = tempfile.mkdtemp(prefix=os.path.basename(layer) + ".", dir=layers_dir)
    command = [sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
               "--target", partial, "-r", requirements]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=PIP_TIMEOUT, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        shutil.rmtree(partial, ignore_errors=True)
        raise LayerError(f"pip install did not finish within {PIP_TIMEOUT:g} s") from None
    log.info("pip install -r %s:\n%s", requirements, done.stdout.rstrip())
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise LayerError(f"pip install exited with code {done.returncode}: {done.stdout.strip()[-_TAIL:]}")
    os.rename(partial, layer)

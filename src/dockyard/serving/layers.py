"""A model's own requirements in a multi-model container: its ``code/requirements.txt``,
pip-installed when the model loads into a layer ``<layers dir>/<key>``, which then joins the
import path.

The key hashes the requirements and the interpreter, so models with the same requirements share
one layer and pip runs once for them (a lock per key keeps two loads from installing it at once;
pip installs into a temporary directory renamed into place only when it succeeds, so a layer that
exists is complete). The layer goes at the END of the import path: the models of one container
share one Python process, so a package the server (or a model loaded earlier) already has is used
as it is; a layer adds what is missing. The process runtime names the layers directory
(``DOCKYARD_LAYERS_DIR``, inside the instance's directory); in an image it is under /tmp.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading

log = logging.getLogger("dockyard.serving")

REQUIREMENTS = os.path.join("code", "requirements.txt")
# pip's limit: within the platform's wait for a load to answer (dockyard's: 120 s).
PIP_TIMEOUT = 100.0
# The tail of pip's output that a failed install reports.
_TAIL = 600

_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


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
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if os.path.isdir(layer):
            log.info("model %s: reusing layer %s (pip not run)", model_dir, key)
        else:
            log.info("model %s: installing %s into layer %s", model_dir, requirements, key)
            _install(requirements, layers_dir, layer)
    if layer not in sys.path:
        sys.path.append(layer)
        importlib.invalidate_caches()  # a finder may have cached the directory's absence
    return layer


def _install(requirements: str, layers_dir: str, layer: str) -> None:
    os.makedirs(layers_dir, mode=0o700, exist_ok=True)
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

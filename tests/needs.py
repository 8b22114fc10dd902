"""What a test needs beyond ``.[test]``: an optional framework, a container engine, a base image,
the package index. Without it a test skips with a one-line reason — unless CI asked for it
(``DOCKYARD_REQUIRE_FRAMEWORKS=1`` for frameworks and the index, ``DOCKYARD_REQUIRE_DOCKER=1``
for the engine and a base image, ``DOCKYARD_REQUIRE_RAY=1`` for Ray, all set by ``.ci/run``), where the missing piece fails the test.

``require("torch")`` imports a framework (at module level it skips the whole module); the
conditions behind the ``docker``, ``base_image`` and ``index`` markers are session fixtures in
tests/conftest.py, so each is checked once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_FRAMEWORKS = "DOCKYARD_REQUIRE_FRAMEWORKS"
REQUIRE_DOCKER = "DOCKYARD_REQUIRE_DOCKER"
REQUIRE_RAY = "DOCKYARD_REQUIRE_RAY"

# The pip requirement that provides each optional module the tests use.
INSTALL = {
    "torch": "pip install torch==2.13.0",
    "xgboost": "pip install xgboost",
    "tensorflow": "pip install tensorflow-cpu",
    "keras": "pip install tensorflow-cpu",
}


def unavailable(reason: str, required_by: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when the variable ``required_by`` is 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str) -> ModuleType:
    """Import an optional framework for a test; without it, skip (or fail under
    DOCKYARD_REQUIRE_FRAMEWORKS=1)."""
    if os.environ.get(REQUIRE_FRAMEWORKS) == "1":
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            missing = str(exc)
        unavailable(f"{module} is not importable ({missing})", REQUIRE_FRAMEWORKS)
    return pytest.importorskip(module, reason=f"needs {module}: {INSTALL.get(module, f'pip install {module}')}")


def require_ray() -> None:
    """Skip a Ray test (tests/ray) when Ray is not installed, or fail under DOCKYARD_REQUIRE_RAY=1."""
    # Without Ray, ``import ray`` would find this directory's tests/ray as a namespace package
    # (tests/ is on sys.path): only a spec with a file behind it is Ray itself.
    spec = importlib.util.find_spec("ray")
    if spec is None or spec.origin is None:
        unavailable("needs Ray: pip install 'dockyard[ray]'", REQUIRE_RAY)

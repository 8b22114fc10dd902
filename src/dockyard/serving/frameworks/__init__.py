"""Framework registry: the framework name in DOCKYARD_FRAMEWORK → the module with its defaults.

Adding a framework is a new module here that defines ``FRAMEWORK = Framework(...)`` plus one line
in ``_MODULES``. Modules are imported only when chosen, so the scikit-learn server never imports
torch.
"""

from __future__ import annotations

import importlib

from dockyard.serving.errors import StartupError
from dockyard.serving.frameworks.base import Framework

# Each name is also the pip extra that installs the framework: dockyard[<name>].
_MODULES = {
    "sklearn": "dockyard.serving.frameworks.sklearn",
    "xgboost": "dockyard.serving.frameworks.xgboost",
    "pytorch": "dockyard.serving.frameworks.pytorch",
    "tensorflow": "dockyard.serving.frameworks.tensorflow",
}

__all__ = ["Framework", "load_framework", "names"]


def names() -> tuple[str, ...]:
    """The framework names DOCKYARD_FRAMEWORK accepts."""
    return tuple(_MODULES)


def load_framework(name: str) -> Framework:
    """Import the framework ``name``; raise ``StartupError`` if it is unknown or not installed."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise StartupError(
            f"unknown framework {name!r} in DOCKYARD_FRAMEWORK; known: {', '.join(names())}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StartupError(
            f"framework {name} is not installed: {exc}; pip install 'dockyard[{name}]'"
        ) from exc
    framework: Framework = module.FRAMEWORK
    return framework

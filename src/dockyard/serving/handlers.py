"""The user's entry module (SAGEMAKER_PROGRAM) and the inference-toolkit handler protocol.

A user module may define ``model_fn(model_dir)``, ``input_fn(input_data, content_type)``,
``predict_fn(data, model)``, ``output_fn(prediction, accept)`` and
``transform_fn(model, input_data, content_type, accept)``; each may take one more, last, argument:
a ``Context``. ``transform_fn`` replaces the other three request handlers, so defining both is an
error at start, as in the SageMaker inference toolkit. The module is looked for in
SAGEMAKER_SUBMIT_DIRECTORY and then in ``<model_dir>/code``, and both are put on ``sys.path`` so
it can import its neighbours.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dockyard.serving.errors import StartupError
from dockyard.serving.settings import Settings

# Handler name → number of arguments before the optional context.
ARITY = {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4}
REQUEST_HANDLERS = ("input_fn", "predict_fn", "output_fn")


@dataclass(slots=True)
class Context:
    """What a handler taking a context argument receives.

    ``system_properties`` mirrors the Multi Model Server context that toolkit handlers read
    (``context.system_properties["model_dir"]``).
    """

    model_dir: str
    custom_attributes: str = ""
    system_properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UserModule:
    """The handler functions a user module defines, and where it came from (None: no module)."""

    path: str | None
    functions: dict[str, Callable[..., Any]]

    def describe(self) -> str:
        return self.path or "the framework defaults"


def load_user_module(settings: Settings, hooks: tuple[str, ...] = ()) -> UserModule:
    """Find, import and check the user module; raise ``StartupError`` naming what is wrong.

    ``hooks`` names more functions to pick up, for frameworks whose containers call their own
    (TensorFlow Serving's ``input_handler`` and ``output_handler``).
    """
    for directory in reversed(settings.code_dirs):
        if os.path.isdir(directory) and directory not in sys.path:
            sys.path.insert(0, directory)
    path = _find_program(settings)
    if path is None:
        return UserModule(None, {})
    module = _import(path)
    functions = {
        name: fn for name in (*ARITY, *hooks) if callable(fn := getattr(module, name, None))
    }
    if "transform_fn" in functions:
        clashes = [name for name in REQUEST_HANDLERS if name in functions]
        if clashes:
            raise StartupError(
                f"{path} defines transform_fn and {', '.join(clashes)}: transform_fn replaces "
                "input_fn, predict_fn and output_fn, so define either transform_fn or those"
            )
    return UserModule(path, functions)


def _find_program(settings: Settings) -> str | None:
    relative = settings.program
    for directory in settings.code_dirs:
        candidate = os.path.join(directory, relative)
        if os.path.isfile(candidate):
            return candidate
        if not candidate.endswith(".py") and os.path.isfile(candidate + ".py"):
            return candidate + ".py"
    if not settings.program_explicit:
        return None
    places = ", ".join(
        f"{d} (SAGEMAKER_SUBMIT_DIRECTORY)" if d == settings.submit_dir else d
        for d in settings.code_dirs
    )
    raise StartupError(f"SAGEMAKER_PROGRAM={relative}: no such file in {places}")


def _import(path: str) -> ModuleType:
    # The toolkit imports the program by module name (``.py`` stripped). Loading it from its path
    # instead means an installed or standard-library module of the same name cannot shadow it.
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StartupError(f"could not import {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, so pickles of classes defined in it (``inference.MyScaler``) load.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise StartupError(f"could not import {path}: {type(exc).__name__}: {exc}") from exc
    return module


def takes_context(fn: Callable[..., Any], arity: int) -> bool:
    """Whether ``fn`` accepts a context after its ``arity`` usual arguments."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional > arity


def with_context(fn: Callable[..., Any], arity: int) -> Callable[..., Any]:
    """``fn`` as a function that always takes the context last, whether or not ``fn`` wants it."""
    if takes_context(fn, arity):
        return fn
    if arity == 1:
        return lambda a, context: fn(a)
    if arity == 2:
        return lambda a, b, context: fn(a, b)
    return lambda a, b, c, d, context: fn(a, b, c, d)

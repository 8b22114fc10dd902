"""What a framework contributes: the defaults used for handlers the user module does not define."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.serving import codecs
from dockyard.serving.handlers import UserModule
from dockyard.serving.settings import Settings

# A whole request path: (body, Content-Type, Accept, custom attributes) → (status, body, type).
RequestHandler = Callable[[bytes, str, str, str], tuple[int, bytes, str]]


@dataclass(frozen=True)
class Framework:
    """Default ``model_fn``/``predict_fn`` and the content types the default input/output handle.

    ``model_fn`` receives the settings too, for loader options such as DOCKYARD_RESTRICTED_UNPICKLE.
    ``setup`` runs once before the model loads, whoever loads it (thread pools, say).
    ``default_content_type`` / ``default_accept`` stand in for a missing Content-Type / Accept
    (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT wins over ``default_accept``), as each container
    family has its own: the XGBoost container assumes CSV both ways.

    A framework whose SageMaker container does not follow the inference toolkit (TensorFlow
    Serving) sets ``request_handler``: given the loaded model and the user module (``hooks``
    names the extra functions to pick up from it), it returns the handler that answers every
    request, in place of the toolkit's input_fn → predict_fn → output_fn chain.
    """

    name: str
    model_fn: Callable[[str, Settings], Any]
    # None only for a framework whose request_handler answers every request.
    predict_fn: Callable[[Any, Any], Any] | None = None
    decoders: Mapping[str, codecs.Decoder] = field(default_factory=lambda: dict(codecs.DECODERS))
    encoders: Mapping[str, codecs.Encoder] = field(default_factory=lambda: dict(codecs.ENCODERS))
    setup: Callable[[Settings], None] | None = None
    default_content_type: str = codecs.JSON
    default_accept: str = codecs.JSON
    hooks: tuple[str, ...] = ()
    # False: the framework's runtime hangs when forked after loading (TensorFlow, XGBoost's
    # OpenMP), so SAGEMAKER_MODEL_SERVER_WORKERS > 1 falls back to one worker.
    fork_safe: bool = True
    # Modules the process runtime's fork server imports once, ahead of the containers it forks
    # (runtime/zygote.py): what loading a typical model imports. Missing ones are skipped.
    preload: tuple[str, ...] = ()
    request_handler: Callable[[Any, UserModule, Settings], RequestHandler] | None = None

    def import_preload(self, *extra: str) -> None:
        """Import ``preload`` (and ``extra``) now, skipping those not installed: a container
        imports what it needs itself."""
        for name in (*self.preload, *extra):
            try:
                importlib.import_module(name)
            except ImportError:
                pass


def threads_per_worker(settings: Settings) -> int:
    """The CPUs this process may use, shared out among SAGEMAKER_MODEL_SERVER_WORKERS workers.

    Framework thread pools default to every core; several containers of one instance, or several
    workers of one container, would then oversubscribe the CPUs and slow every prediction.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // settings.workers)


def model_file(model_dir: Path, preferred: str, accepts: Callable[[Path], bool], kind: str) -> Path:
    """``preferred`` in ``model_dir``, else the only file there that ``accepts`` (a ``kind``)."""
    if (model_dir / preferred).is_file():
        return model_dir / preferred
    files = (
        sorted(p for p in model_dir.iterdir() if p.is_file() and accepts(p))
        if model_dir.is_dir()
        else []
    )
    if len(files) == 1:
        return files[0]
    found = ", ".join(p.name for p in files) or "none"
    raise FileNotFoundError(
        f"{model_dir} needs {preferred} or exactly one {kind} (found: {found}); "
        "or define model_fn in inference.py"
    )

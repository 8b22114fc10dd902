"""The model server's settings, read once from the container environment.

SageMaker configures its containers through environment variables (``SAGEMAKER_*``); the variables
that only dockyard sets are prefixed ``DOCKYARD_``. Everything else in ``serving`` receives a
``Settings`` and never reads the environment itself.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from dockyard.serving.errors import StartupError

log = logging.getLogger("dockyard.serving")

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PROGRAM = "inference.py"


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know about its environment."""

    host: str = "0.0.0.0"
    port: int = 8080
    model_dir: str = DEFAULT_MODEL_DIR
    framework: str = "sklearn"
    # Entry script as given (``inference.py``); ``program_explicit`` says whether the user named it,
    # which turns a missing file from "use the framework defaults" into a start-up error.
    program: str = DEFAULT_PROGRAM
    program_explicit: bool = False
    # Directories searched for ``program`` in order: SAGEMAKER_SUBMIT_DIRECTORY, <model_dir>/code.
    code_dirs: tuple[str, ...] = field(default=(DEFAULT_MODEL_DIR + "/code",))
    submit_dir: str | None = None
    # One worker runs inference on a thread of the server process: no IPC hop per request and the
    # fastest start. SageMaker's scikit-learn container starts one gunicorn worker per CPU instead;
    # set SAGEMAKER_MODEL_SERVER_WORKERS for models whose predict holds the GIL for long.
    workers: int = 1
    timeout: float = 60.0
    # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT; None: the framework's own default (JSON, or CSV for
    # XGBoost, as in each SageMaker container).
    default_accept: str | None = None
    log_level: int = logging.INFO
    restricted_unpickle: bool = False
    max_payload_mb: int = 6
    # SAGEMAKER_MULTI_MODEL: no model at start; the platform loads them through /models.
    multi_model: bool = False
    # Multi-model: where each model's code/requirements.txt is installed (see ``layers``).
    layers_dir: str = os.path.join(tempfile.gettempdir(), "dockyard-layers")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Read the settings from ``env``; raise ``StartupError`` naming any invalid variable."""
        model_dir = env.get("DOCKYARD_MODEL_DIR") or DEFAULT_MODEL_DIR
        submit_dir = _local_dir(env.get("SAGEMAKER_SUBMIT_DIRECTORY", ""))
        code_dirs = tuple(d for d in (submit_dir, os.path.join(model_dir, "code")) if d)
        program = env.get("SAGEMAKER_PROGRAM", "")
        return cls(
            host=env.get("DOCKYARD_BIND_HOST") or "0.0.0.0",
            port=_number(env, "SAGEMAKER_BIND_TO_PORT", 8080, int, minimum=1, maximum=65535),
            model_dir=model_dir,
            framework=(env.get("DOCKYARD_FRAMEWORK") or "sklearn").strip().lower(),
            program=program or DEFAULT_PROGRAM,
            program_explicit=bool(program),
            code_dirs=code_dirs,
            submit_dir=submit_dir,
            workers=_number(env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1, int, minimum=1),
            timeout=_number(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0, float, minimum=0.001),
            default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None,
            log_level=_log_level(env.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "")),
            restricted_unpickle=_flag(env, "DOCKYARD_RESTRICTED_UNPICKLE"),
            max_payload_mb=_number(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, int, minimum=1),
            multi_model=_flag(env, "SAGEMAKER_MULTI_MODEL"),
            layers_dir=env.get("DOCKYARD_LAYERS_DIR") or cls.layers_dir,
        )


def _local_dir(value: str) -> str | None:
    """SAGEMAKER_SUBMIT_DIRECTORY as a local path (SageMaker SDK local mode gives file:// URLs)."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("file://"):
        return value[len("file://") :] or "/"
    if "://" in value:
        # An s3:// source archive is unpacked by the platform before start (into <model_dir>/code).
        log.warning(
            "SAGEMAKER_SUBMIT_DIRECTORY=%s is not a local directory; looking for code in the "
            "model directory only",
            value,
        )
        return None
    return value


_N = TypeVar("_N", int, float)


def _number(
    env: Mapping[str, str],
    name: str,
    default: _N,
    kind: Callable[[str], _N],
    minimum: _N,
    maximum: _N | None = None,
) -> _N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f" between {minimum} and {maximum}" if maximum is not None else f" >= {minimum}"
        noun = "an integer" if kind is int else "a number"
        raise StartupError(f"{name} must be {noun}{bounds}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise StartupError(f"{name} must be true or false, got {raw!r}")


def _log_level(raw: str) -> int:
    """A logging level number (SageMaker's SDK sets ``20``) or name (``INFO``)."""
    raw = raw.strip()
    if not raw:
        return logging.INFO
    if raw.lstrip("-").isdigit():
        return int(raw)
    level = logging.getLevelName(raw.upper())
    if not isinstance(level, int):
        raise StartupError(
            f"SAGEMAKER_CONTAINER_LOG_LEVEL must be a logging level number or name, got {raw!r}"
        )
    return level

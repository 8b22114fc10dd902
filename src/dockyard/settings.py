"""One typed settings object for the dockyard server, read from ``DOCKYARD_*`` variables.

The CLI builds it (flags win over the environment) and passes it down; nothing else in the
server reads the environment for its own configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

DEFAULT_PORT = 8780
"""Not 8080: that is the port SageMaker containers themselves listen on when alone."""

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""InvokeEndpoint request and response bodies are at most 6 MiB (botocore's BodyBlob max)."""


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("dockyard", appauthor=False))


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    state_dir: Path = field(default_factory=default_state_dir)
    runtime: str = "process"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # SageMaker: a container must answer /invocations within 60 s.
    invocation_timeout: float = 60.0
    # SageMaker's container contract allowed 4 minutes to pass /ping; a variant's
    # ContainerStartupHealthCheckTimeoutInSeconds overrides it.
    startup_timeout: float = 240.0
    # SageMaker sends SIGTERM, then SIGKILL 30 s later.
    stop_grace: float = 30.0
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    # How often the reconciler re-checks running instances when nothing has changed.
    health_interval: float = 2.0
    # Healing: an instance that could not be replaced, or keeps dying, is retried after this many
    # seconds, doubling up to restart_backoff_max, for as long as its endpoint exists.
    restart_backoff: float = 1.0
    restart_backoff_max: float = 30.0
    # Most containers all endpoints may run together (ResourceLimitExceeded beyond).
    max_containers: int = 200
    # Docker runtime: the registry that ECR-style image URIs are pulled from (host[:port][/prefix]):
    # <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> → <registry>/<repo>:<tag>.
    registry: str | None = None
    # Docker runtime: the Python base image (instance sandboxes run `sleep` in it); None picks
    # python:3.11-slim or dockyard/base:bookworm, whichever the engine has.
    base_image: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        env = os.environ
        base = cls(
            host=env.get("DOCKYARD_HOST", cls.host),
            port=int(env.get("DOCKYARD_PORT", cls.port)),
            state_dir=Path(env["DOCKYARD_STATE_DIR"]) if env.get("DOCKYARD_STATE_DIR") else default_state_dir(),
            runtime=env.get("DOCKYARD_RUNTIME", cls.runtime),
            region=env.get("DOCKYARD_REGION", env.get("AWS_DEFAULT_REGION", cls.region)),
            account_id=env.get("DOCKYARD_ACCOUNT_ID", cls.account_id),
            invocation_timeout=_env_float("DOCKYARD_INVOCATION_TIMEOUT", cls.invocation_timeout),
            startup_timeout=_env_float("DOCKYARD_STARTUP_TIMEOUT", cls.startup_timeout),
            stop_grace=_env_float("DOCKYARD_STOP_GRACE", cls.stop_grace),
            max_containers=int(env.get("DOCKYARD_MAX_CONTAINERS", cls.max_containers)),
            registry=env.get("DOCKYARD_REGISTRY") or None,
            base_image=env.get("DOCKYARD_BASE_IMAGE") or None,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def arn(self, kind: str, name: str) -> str:
        # Real SageMaker lower-cases the resource name inside ARNs.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

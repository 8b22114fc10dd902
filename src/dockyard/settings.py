"""One typed settings object for the dockyard server, read from ``DOCKYARD_*`` variables.

Every field of :class:`Settings` is settable from ``DOCKYARD_<FIELD NAME IN CAPITALS>``: one loop
over the dataclass fields converts each variable by the field's annotation (str, int, float, bool,
Path, ``X | None``, and ``tuple[Path, ...]`` for repeatable values, separated by ``os.pathsep``),
so a new field needs no code here. A value that does not convert, or breaks a field's bounds
(``metadata``), is a :class:`SettingsError` naming the variable — one line, not a traceback.

The CLI builds it (flags win over the environment) and passes it down; nothing else in the
server reads the environment for its own configuration.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_PORT = 8780
"""Not 8080: that is the port SageMaker containers themselves listen on when alone."""

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""InvokeEndpoint request and response bodies are at most 6 MiB (botocore's BodyBlob max)."""

MAX_UNPACKED_BYTES = 30 * 1024**3
"""SageMaker gives hosting instances without instance storage a 30 GB ML storage volume."""

ENV_PREFIX = "DOCKYARD_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A ``DOCKYARD_*`` variable (or flag) has a value dockyard cannot use; ``str(e)`` says which."""


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("dockyard", appauthor=False))


def _bounds(low: float | None = None, high: float | None = None, *, choices: tuple[str, ...] = (),
            fallback: str | None = None) -> dict[str, Any]:
    """Field metadata: the valid range or choices, and a non-dockyard variable read when
    ``DOCKYARD_<NAME>`` is unset."""
    return {"low": low, "high": high, "choices": choices, "fallback": fallback}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = field(default=DEFAULT_PORT, metadata=_bounds(0, 65535))
    state_dir: Path = field(default_factory=default_state_dir)
    runtime: str = field(default="process", metadata=_bounds(choices=("process", "docker", "ray")))
    region: str = field(default="us-east-1", metadata=_bounds(fallback="AWS_DEFAULT_REGION"))
    account_id: str = "123456789012"
    # SageMaker: a container must answer /invocations within 60 s.
    invocation_timeout: float = field(default=60.0, metadata=_bounds(0))
    # Multi-model endpoints: how long an invocation waits for its model to load before it is
    # answered ModelNotReadyException (429, retried by clients) while the load carries on.
    model_load_wait: float = field(default=30.0, metadata=_bounds(0))
    # SageMaker's container contract allowed 4 minutes to pass /ping; a variant's
    # ContainerStartupHealthCheckTimeoutInSeconds overrides it.
    startup_timeout: float = field(default=240.0, metadata=_bounds(0))
    # SageMaker's SIGTERM → SIGKILL grace (runtime/contract.py's STOP_GRACE; settings sit below runtime/).
    stop_grace: float = field(default=30.0, metadata=_bounds(0))
    max_payload_bytes: int = field(default=MAX_PAYLOAD_BYTES, metadata=_bounds(1))
    # How often the reconciler re-checks running instances when nothing has changed.
    health_interval: float = field(default=2.0, metadata=_bounds(0.01))
    # Healing: an instance that could not be replaced, or keeps dying, is retried after this many
    # seconds, doubling up to restart_backoff_max, for as long as its endpoint exists.
    restart_backoff: float = field(default=1.0, metadata=_bounds(0.001))
    restart_backoff_max: float = field(default=30.0, metadata=_bounds(0.001))
    # A serverless variant without ProvisionedConcurrency stops its instance after this many
    # seconds with no request in flight; the next request starts one (a cold start). SageMaker
    # scales serverless endpoints to zero after a few idle minutes.
    serverless_idle_seconds: float = field(default=300.0, metadata=_bounds(0.01))
    # Autoscaling (control/autoscaling.py): the length of one metric datapoint. SageMaker's
    # metrics are per minute; a shorter period is normalised to per minute (tests use ~1 s).
    autoscaling_period: float = field(default=60.0, metadata=_bounds(0.05))
    # Most containers all endpoints may run together (ResourceLimitExceeded beyond).
    max_containers: int = field(default=200, metadata=_bounds(0))
    # Docker runtime: the registry that ECR-style image URIs are pulled from (host[:port][/prefix]):
    # <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> → <registry>/<repo>:<tag>.
    registry: str | None = None
    # Docker runtime: the Python base image (instance sandboxes run `sleep` in it); None picks
    # python:3.11-slim or dockyard/base:bookworm, whichever the engine has.
    base_image: str | None = None
    # Local model data, code and image directories are read only under these roots (--allow-path,
    # repeatable); None: the user's home and the current directory, or none when credentials are
    # configured. /proc, /sys, /dev and device files never.
    allow_paths: tuple[Path, ...] | None = None
    # http(s):// model data from link-local and cloud-metadata addresses (169.254.0.0/16,
    # fd00:ec2::254) is refused unless this is set.
    allow_link_local: bool = False
    # Most bytes one instance's model data (and code) may take once unpacked or copied.
    max_unpacked_bytes: int = field(default=MAX_UNPACKED_BYTES, metadata=_bounds(1))
    # Process runtime, server running as root: the user (name or uid) containers run as, so that
    # user code never runs as root; "root" runs them as root.
    container_user: str = "nobody"
    # Process runtime: fork managed containers of fork-safe frameworks from a pre-warmed parent per
    # framework (fast start, shared memory); false spawns every container as a new interpreter.
    fork_server: bool = True
    # Ray runtime (docs/scale-out.md): the cluster to join ("auto": the one this machine's `ray start`
    # joined; else the head's GCS address host:port), and how instances run their containers on a node.
    ray_address: str = "auto"
    ray_containers: str = field(default="process", metadata=_bounds(choices=("process", "docker")))
    # Ray runtime: how long an instance waits for the cluster to place it before its start fails
    # with SageMaker's insufficient-capacity FailureReason.
    ray_capacity_timeout: float = field(default=120.0, metadata=_bounds(0))
    # Security (README "Security"). An INI file of access key id → secret (like ~/.aws/credentials):
    # when given, every request must carry a SigV4 signature made with one of its keys (and its
    # session token, if it has one); the console signs in with one.
    credentials: Path | None = None
    # Serve a non-loopback host without credentials (refused otherwise).
    insecure_no_auth: bool = False
    # Serve HTTPS with this certificate chain and private key (PEM).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Answer /metrics unsigned even when credentials are configured (for a Prometheus scraper).
    metrics_open: bool = False
    # With credentials: how long a console sign-in lasts, in seconds (then the browser signs in again).
    console_session_seconds: float = field(default=12 * 3600.0, metadata=_bounds(1))
    # Slow clients: a connection must complete its request headers within header_timeout of its
    # first byte (and of connecting), and a request body within body_timeout of its headers.
    header_timeout: float = field(default=10.0, metadata=_bounds(0.01))
    body_timeout: float = field(default=60.0, metadata=_bounds(0.01))
    # An idle keep-alive connection is closed after this long (boto3 reconnects transparently).
    keepalive_timeout: float = field(default=75.0, metadata=_bounds(0.01))
    # Most client connections open at once; beyond it, the oldest connection still waiting for its
    # request headers is closed (else the new one is refused).
    max_connections: int = field(default=1000, metadata=_bounds(1))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name), f"--{f.name.replace('_', '-')}")

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then ``DOCKYARD_*`` variables, then ``overrides`` that are not None (flags)."""
        env = os.environ if env is None else env
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = env_name(f.name)
            raw = env.get(name) or (env.get(f.metadata["fallback"]) if f.metadata.get("fallback") else None)
            if raw:
                values[f.name] = _check(f, _convert(hints[f.name], raw, name), name)
        base = cls(**values)
        changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **changes)

    def arn(self, kind: str, name: str) -> str:
        # Real SageMaker lower-cases the resource name inside ARNs.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"


def env_name(field_name: str) -> str:
    """The variable a field is read from: ``health_interval`` → ``DOCKYARD_HEALTH_INTERVAL``."""
    return ENV_PREFIX + field_name.upper()


def settings_help() -> str:
    """One line per setting, for ``dockyard serve --help``: its variable and default."""
    lines = ["Every setting also reads a variable (flags win):"]
    for f in dataclasses.fields(Settings):
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else (factory() if callable(factory) else None)
        lines.append(f"{env_name(f.name)}  [default: {'none' if default is None else default}]")
    return "\b\n" + "\n".join(lines)


def _convert(annotation: Any, raw: str, name: str) -> Any:
    """``raw`` as a value of ``annotation``; a SettingsError naming ``name`` when it is not one."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        # Optional[X]: an unset or empty variable never gets here, so convert to X.
        return _convert(next(a for a in args if a is not type(None)), raw, name)
    if origin is tuple:
        return tuple(_convert(args[0], part, name) for part in raw.split(os.pathsep) if part)
    if annotation is bool:
        if raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise SettingsError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")
    if annotation in (int, float):
        try:
            return annotation(raw)
        except ValueError:
            kind = "an integer" if annotation is int else "a number"
            raise SettingsError(f"{name}={raw!r} is not {kind}") from None
    if annotation in (str, Path):
        return annotation(raw)
    raise TypeError(f"Settings cannot read a {annotation!r} from the environment ({name})")


def _check(f: dataclasses.Field[Any], value: Any, source: str) -> Any:
    """``value`` if it is within the field's bounds, else a SettingsError naming ``source``."""
    low, high, choices = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("choices")
    if choices and value not in choices:
        raise SettingsError(f"{source}={value!r} is not one of {', '.join(choices)}")
    if low is not None and value < low:
        raise SettingsError(f"{source}={value!r} is below the minimum {low}")
    if high is not None and value > high:
        raise SettingsError(f"{source}={value!r} is above the maximum {high}")
    return value

"""The Runtime protocol: what the reconciler asks of any place that runs instances.

An *instance* is one copy of a variant's model: all of the model's containers side by side on
one host, sharing its network, like one EC2 instance. A runtime starts an instance (and only
returns once every container answers ``/ping``), stops it, says whether it is still alive, and
reports logs and resource use. It tells ``on_exit`` when a running instance's container exits (or
its host is lost) as it happens, so the instance is replaced at once, not at the next health check.
"""

from __future__ import annotations

import asyncio
import platform
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class InstanceStartError(Exception):
    """An instance could not start; ``str(e)`` is the FailureReason shown to the user."""


@dataclass(frozen=True)
class ContainerSpec:
    hostname: str
    image: str
    environment: dict[str, str]
    # Host directory holding the unpacked model data (mounted at contract.MODEL_DIR).
    model_dir: Path
    # Host directory holding SAGEMAKER_SUBMIT_DIRECTORY's code, when the model names one.
    code_dir: Path | None = None
    multi_model: bool = False
    # The ContainerDefinition whose model data and code are still to be fetched, into model_dir, on
    # the node that runs the instance (the ray runtime, ``model_data.prepare_container``); None when
    # model_dir and code_dir hold them already.
    model_source: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class InstanceSpec:
    instance_id: str
    endpoint: str
    variant: str
    instance_type: str
    containers: tuple[ContainerSpec, ...]
    startup_timeout: float
    # Scratch space of this instance (model data, code); removed when the instance stops.
    workdir: Path
    # Where the containers' stdout/stderr go; kept until the endpoint is deleted.
    log_dir: Path
    # What the instance runs (the variant's containers, mode and instance type), as a digest: a
    # restarted server adopts a still-running instance only for a plan with the same digest.
    plan_digest: str = ""
    # The variant's VolumeSizeInGB in bytes: the model data budget of containers with a model_source.
    volume_bytes: int | None = None


@dataclass
class RunningContainer:
    hostname: str
    url: str
    log_path: Path
    # Runtime-specific handle (a process, a docker container).
    handle: Any = None
    # Where the container sees its spec's ``model_dir`` (None: at the host path, as a process does).
    model_dir_inside: str | None = None


@dataclass
class RunningInstance:
    spec: InstanceSpec
    containers: tuple[RunningContainer, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    # Where the instance runs, as `dockyard endpoints` and `stats` show it: this host's name, or
    # the Ray node's address.
    node: str = field(default_factory=platform.node)


@dataclass(frozen=True)
class InstanceExit:
    """News from a runtime, as it happens: containers of a running instance exited, or its host is gone."""

    instance: RunningInstance
    hostnames: tuple[str, ...]
    # What happened, for the server's log and DescribeEndpoint: "exited with code 1", ...
    what: str
    # The host itself is gone (a Ray node): requests in flight there will never be answered.
    host_lost: bool = False


ExitListener = Callable[[InstanceExit], None]


def ignore_exit(event: InstanceExit) -> None:
    """The ``on_exit`` of a runtime nobody listens to yet."""


def exit_description(code: int | None) -> str:
    """A container's exit status in words: a negative code is the signal that killed it (asyncio's
    convention); an engine reports signal n as code 128 + n."""
    if code is None:
        return "exited"
    if code < 0:
        return f"was killed by {_signal_name(-code)}"
    return f"exited with code {code}" + (f" ({_signal_name(code - 128)})" if code > 128 else "")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True)
class ContainerStats:
    hostname: str
    cpu_percent: float | None
    memory_bytes: int | None


class Runtime(Protocol):
    name: str
    # Told on the event loop when a container of a running instance (one ``start_instance``
    # returned and ``stop_instance`` has not been asked to stop) exits, or its host is lost. A
    # runtime that cannot tell leaves it uncalled: the reconciler also asks ``dead_containers``
    # every health interval.
    on_exit: ExitListener

    async def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        """Start every container, wait for all to pass ``/ping``; raise InstanceStartError."""

    async def stop_instance(self, instance: RunningInstance) -> None:
        """SIGTERM every container, SIGKILL after the grace period, release resources."""

    def dead_containers(self, instance: RunningInstance) -> list[str]:
        """Hostnames of containers that have exited."""

    async def stats(self, instance: RunningInstance) -> list[ContainerStats]:
        """CPU and resident memory per container."""

    async def resident_memory(self, instance: RunningInstance) -> int | None:
        """The resident memory of all the instance's containers together, read at once (no CPU
        sampling window: a multi-model load waits for it); None when it cannot be read."""

    async def adopt(self) -> list[RunningInstance]:
        """Take over the healthy instances an earlier, killed server left running (called once,
        before ``remove_orphans``, which spares them); the caller stops those it does not want."""

    async def remove_orphans(self) -> None:
        """Stop whatever an earlier, killed server left running, except what ``adopt`` returned."""

    async def close(self) -> None:
        """Release the runtime's own resources (clients, sessions)."""


def tail(path: Path, lines: int = 20, max_chars: int = 700) -> str:
    """The last lines of a log file, for a FailureReason (which SageMaker caps at 1024)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    last = "\n".join(text.splitlines()[-lines:])
    return last[-max_chars:]


async def first_error(checks: Iterable[Awaitable[Any]]) -> BaseException | None:
    """Run the checks together; on the first failure cancel the rest and return it."""
    tasks = [asyncio.ensure_future(c) for c in checks]
    if not tasks:
        return None
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return next((t.exception() for t in done if not t.cancelled() and t.exception() is not None), None)


async def start_containers(
    instance: RunningInstance,
    launch: Callable[[int, ContainerSpec], Awaitable[RunningContainer]],
    await_healthy: Callable[[RunningContainer], Awaitable[None]],
    discard: Callable[[RunningInstance], Awaitable[None]],
) -> RunningInstance:
    """Launch every container of ``instance`` at once, then wait until every one passes /ping.

    The first failure cancels the sibling launches and waits; then ``discard`` removes whatever
    started, and the failure is raised. Cancellation does the same: the clean-up is shielded,
    so a start abandoned half-way (a delete during a create, a server shutting down) leaves nothing.
    """
    launches = [asyncio.ensure_future(launch(i, c)) for i, c in enumerate(instance.spec.containers)]
    try:
        error = await first_error(launches)
        instance.containers = _launched(launches)
        if error is None:
            error = await first_error(await_healthy(c) for c in instance.containers)
        if error is not None:
            raise error
    except BaseException:
        await asyncio.shield(_abandon(instance, launches, discard))
        raise
    return instance


def _launched(launches: Sequence[asyncio.Future[RunningContainer]]) -> tuple[RunningContainer, ...]:
    return tuple(t.result() for t in launches if t.done() and not t.cancelled() and t.exception() is None)


async def _abandon(
    instance: RunningInstance,
    launches: Sequence[asyncio.Future[RunningContainer]],
    discard: Callable[[RunningInstance], Awaitable[None]],
) -> None:
    for task in launches:
        task.cancel()
    await asyncio.gather(*launches, return_exceptions=True)
    instance.containers = _launched(launches)
    await discard(instance)


def note_in_log(container: RunningContainer, text: str) -> None:
    """Add dockyard's own line to a container's log, where ``dockyard logs`` shows how it ended."""
    try:
        with container.log_path.open("a", encoding="utf-8") as log:
            log.write(f"[dockyard] {text}\n")
    except OSError:  # the log directory went with its endpoint
        pass


def failure_reason(spec: InstanceSpec, container: RunningContainer, what: str) -> str:
    """SageMaker-style FailureReason naming the container and quoting its last log lines."""
    who = "The primary container" if container.hostname == "primary" else f"Container {container.hostname}"
    head = f"{who} for production variant {spec.variant} {what}."
    logs = tail(container.log_path, max_chars=1000 - len(head))
    return f"{head} Last log lines:\n{logs}" if logs else head

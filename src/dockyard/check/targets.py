"""What ``dockyard check`` runs: the Container protocol, and the process target.

A process target is a directory holding an executable ``serve`` (run as ``serve serve``, like a BYOC
container) or a managed image run by dockyard's own model server, with the environment dockyard's
process runtime gives its containers. Images run through a container engine: ``docker_target``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from pathlib import Path
from typing import Protocol

from dockyard.check import procnet
from dockyard.runtime import processes
from dockyard.runtime.base import InstanceStartError, tail
from dockyard.runtime.ports import free_port, free_range
from dockyard.runtime.process import (
    SAFE_PORT_RANGE_SIZE,
    command_for,
    process_environment,
)

# The name the multi-model check loads the model under.
CHECK_MODEL = "dockyard-check"


class StartFailed(Exception):
    """The container could not be started at all; ``str(e)`` says why."""


class Container(Protocol):
    """One started container, as the checks see it."""

    url: str
    # The model URL to give POST /models, as the container sees the model directory.
    multi_model_url: str

    async def exit_code(self) -> int | None:
        """The exit code once it has exited, else None."""

    async def listening_ports(self) -> list[int] | None:
        """The ports it listens on (None: cannot tell)."""

    async def terminate(self) -> None:
        """Send SIGTERM, as the platform does to stop a container."""

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""

    async def remove(self) -> None:
        """Kill it if it still runs and release everything it used."""

    async def logs(self) -> str:
        """Its last log lines."""


class Target(Protocol):
    description: str
    runtime: str
    # What the image's labels claim (None: a process target has no labels).
    multi_model_label: bool | None
    bind_to_port_label: bool | None
    # Whether the model is mounted read-only at /opt/ml/model (only images are).
    mounts_model: bool

    async def start(self, bind_to_port: int | None, multi_model: bool) -> Container:
        """Start with SAGEMAKER_BIND_TO_PORT (None: unset); raise StartFailed."""


class ProcessContainer:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log_path: Path, model_dir: Path) -> None:
        self._proc = proc
        self._log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.multi_model_url = str(model_dir)

    async def exit_code(self) -> int | None:
        return self._proc.returncode

    async def listening_ports(self) -> list[int] | None:
        return await asyncio.to_thread(procnet.session_listening_ports, self._proc.pid)

    async def terminate(self) -> None:
        # Like `docker stop`, which signals the container's PID 1 only: a wrapper script that does not
        # pass the signal on must fail this check here as it would in a container.
        try:
            os.kill(self._proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    async def wait_exit(self, timeout: float) -> int | None:
        try:
            return await asyncio.wait_for(self._proc.wait(), timeout)
        except asyncio.TimeoutError:
            return None

    async def remove(self) -> None:
        await processes.stop_group(self._proc, 0)

    async def logs(self) -> str:
        return tail(self._log_path, lines=30, max_chars=3000)


class ProcessTarget:
    """A directory with an executable ``serve``, or a managed image, run as a local process."""

    runtime = "process"
    multi_model_label: bool | None = None
    bind_to_port_label: bool | None = None
    mounts_model = False

    def __init__(self, image: str, workdir: Path, model_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.image = image
        self.description = image
        self._workdir = workdir
        self._model_dir = model_dir.resolve() if model_dir else None
        self._env = env or {}
        try:
            self._command, self._extra_env, self._cwd = command_for(image)
        except InstanceStartError as exc:
            raise StartFailed(str(exc)) from None

    async def start(self, bind_to_port: int | None, multi_model: bool) -> Container:
        # The process runtime always assigns the port: every container shares the host's network.
        port = bind_to_port or free_port()
        low, high = free_range(SAFE_PORT_RANGE_SIZE)
        model_dir = self._model_dir or Path(tempfile.mkdtemp(prefix="model-", dir=self._workdir))
        env = process_environment(self._env, self._extra_env, port, (low, high), model_dir, multi_model=multi_model)
        log_path = Path(tempfile.mkstemp(prefix="container-", suffix=".log", dir=self._workdir)[1])
        executable = Path(self._command[0])
        if self._cwd is not None and not os.access(executable, os.X_OK):
            raise StartFailed(f"{executable} is not executable: chmod +x {executable}")
        try:
            proc = await processes.spawn(self._command, self._cwd or self._workdir, env, log_path)
        except OSError as exc:
            raise StartFailed(f"could not run {' '.join(self._command)}: {exc}") from None
        return ProcessContainer(proc, port, log_path, model_dir)


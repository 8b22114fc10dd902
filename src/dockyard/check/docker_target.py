"""An image run through a container engine (Docker, or Podman's Docker API) with the ``docker`` SDK.

The engine is found as the rest of dockyard finds it (``runtime.docker_engine.connect``). The container
is started as SageMaker starts it: ``serve`` as its command, the model mounted read-only at
/opt/ml/model, the port published on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import docker
import requests

from dockyard.check import procnet
from dockyard.check.targets import CHECK_MODEL, StartFailed
from dockyard.runtime.contract import (
    BIND_TO_PORT_LABEL,
    DEFAULT_PORT,
    MODEL_DIR,
    MULTI_MODEL_DIR,
    MULTI_MODEL_LABEL,
)
from dockyard.runtime.docker_engine import connect
from dockyard.runtime.ports import free_port


class DockerContainer:
    def __init__(self, container: Any, host_port: int, multi_model_url: str) -> None:
        self._container = container
        self.url = f"http://127.0.0.1:{host_port}"
        self.multi_model_url = multi_model_url

    async def exit_code(self) -> int | None:
        await asyncio.to_thread(self._container.reload)
        state = self._container.attrs.get("State", {})
        return None if state.get("Running") or state.get("Status") == "created" else int(state.get("ExitCode", -1))

    async def listening_ports(self) -> list[int] | None:
        # The container's own network namespace: every listening socket in it is the container's.
        try:
            result = await asyncio.to_thread(self._container.exec_run, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        except docker.errors.DockerException:  # an exited container, or no `cat` in the image: no hint then
            return None
        if result.exit_code not in (0, 1):
            return None
        return procnet.listening_ports(result.output.decode(errors="replace"))

    async def terminate(self) -> None:
        with contextlib.suppress(docker.errors.APIError):  # already exited
            await asyncio.to_thread(self._container.kill, signal="SIGTERM")

    async def wait_exit(self, timeout: float) -> int | None:
        try:
            result = await asyncio.to_thread(self._container.wait, timeout=timeout)
        except requests.exceptions.RequestException:  # the SDK lets the HTTP client's timeout through
            return None
        return int(result.get("StatusCode", -1))

    async def remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):  # already gone
            await asyncio.to_thread(self._container.remove, force=True)

    async def logs(self) -> str:
        try:
            data = await asyncio.to_thread(self._container.logs, tail=30)
        except docker.errors.DockerException:
            return ""
        return data.decode(errors="replace")[-3000:]


class DockerTarget:
    runtime = "docker"
    mounts_model = True

    def __init__(self, image: str, model_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.description = image
        self._client = connect()
        try:
            self._image = self._client.images.get(image)
        except docker.errors.ImageNotFound:
            raise StartFailed(f"Image {image} is not in the engine's local images: build or pull it first.") from None
        labels = self._image.labels or {}
        self.multi_model_label = labels.get(MULTI_MODEL_LABEL) == "true"
        self.bind_to_port_label = labels.get(BIND_TO_PORT_LABEL) == "true"
        self._model_dir = model_dir.resolve() if model_dir else None
        self._env = env or {}

    async def start(self, bind_to_port: int | None, multi_model: bool) -> DockerContainer:
        port = bind_to_port or DEFAULT_PORT
        host_port = free_port()
        env = dict(self._env)
        if bind_to_port is not None:
            env["SAGEMAKER_BIND_TO_PORT"] = str(bind_to_port)
        volumes: dict[str, dict[str, str]] = {}
        multi_model_url = f"{MULTI_MODEL_DIR}/{CHECK_MODEL}/model"
        if self._model_dir is not None:
            volumes[str(self._model_dir)] = {"bind": MODEL_DIR, "mode": "ro"}
        if multi_model:
            env["SAGEMAKER_MULTI_MODEL"] = "true"
            if self._model_dir is not None:
                # A second mount of the same directory: the platform unpacks MME models below /opt/ml/models.
                volumes[f"{self._model_dir}/."] = {"bind": multi_model_url, "mode": "ro"}
        try:
            container = await asyncio.to_thread(
                self._client.containers.run,
                self._image.id,
                command=["serve"],
                detach=True,
                environment=env,
                ports={f"{port}/tcp": ("127.0.0.1", host_port)},
                volumes=volumes,
                labels={"dockyard.check": "true"},
            )
        except docker.errors.DockerException as exc:
            raise StartFailed(f"the engine could not start {self.description}: {exc}") from None
        return DockerContainer(container, host_port, multi_model_url)

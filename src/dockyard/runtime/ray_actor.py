"""What runs on a Ray node for one instance: the actor that fetches the instance's model data there,
starts its containers there through the process runtime (or the node's Docker engine), and
reports where they listen; and the task that removes a server's docker containers left on a node.

The ray runtime (``ray.py``) creates one ``InstanceHost`` per instance, in the instance's placement
group, so it lands on the node Ray reserved for the instance. The containers listen on the node's
cluster address. ``watch`` returns once a container has exited; when the node dies, the actor dies
with it, and the call fails: either way the ray runtime learns that the instance is gone.

Process containers are children of the actor's process and die with it (parent-death signal).
Docker containers are the node engine's and outlive an actor killed on a node that survives: the
ray runtime runs ``reap`` on that node (a task pinned to it) to remove them.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from dockyard.artifacts.policy import AccessPolicy
from dockyard.artifacts.store import ArtifactStore
from dockyard.doorbell import rung
from dockyard.runtime import privileges
from dockyard.runtime.base import ContainerStats, InstanceSpec, InstanceStartError, RunningInstance, Runtime
from dockyard.runtime.model_data import prepare_container

# How often ``watch`` looks at the containers besides being woken by the node runtime's exit
# reports (``on_exit``): cheap (a returncode), and a bound should a report go missing.
WATCH_INTERVAL = 0.25


@dataclass(frozen=True)
class NodeConfig:
    """What an instance's actor needs from the server's settings to run it on its node."""

    owner: str
    stop_grace: float
    # "process" or "docker": how the node runs the containers.
    containers: str
    region: str
    policy: AccessPolicy
    # Where the node caches downloaded model data, and keeps the virtualenv layers of requirements.txt.
    cache_dir: Path
    layers_dir: Path
    # Process containers: the user they run as when the node's Ray runs as root (privileges.py).
    container_user: str
    # Docker containers: the registry of ECR-style URIs, and the sandbox's base image.
    registry: str | None = None
    base_image: str | None = None


@dataclass(frozen=True)
class Placed:
    """Where an instance's containers run: the Ray node and its address, and their URLs by hostname."""

    node_id: str
    node_address: str
    urls: dict[str, str]


class InstanceHost:
    """One instance on one node (a Ray actor: ``ray.py`` wraps the class with ``ray.remote``)."""

    def __init__(self, config: NodeConfig) -> None:
        import ray

        self._config = config
        self._node_id = ray.get_runtime_context().get_node_id()
        self._address = ray.util.get_node_ip_address()
        self._runtime: Runtime | None = None
        self._instance: RunningInstance | None = None
        # Set by the node runtime's report of a container's exit: ``watch`` answers at once.
        self._exited = asyncio.Event()

    def _make_runtime(self) -> Runtime:
        config = self._config
        if config.containers == "docker":
            from dockyard.runtime.docker import DockerRuntime
            from dockyard.runtime.docker_engine import EngineUnavailable, connect

            try:
                client = connect()
            except EngineUnavailable as exc:
                raise InstanceStartError(f"Ray node {self._address} cannot run containers: {exc}") from None
            return DockerRuntime(client, config.owner, config.stop_grace, config.registry, config.base_image,
                                 bind_host=self._address, sweep_on_close=False)
        from dockyard.runtime.process import ProcessRuntime

        try:
            user = privileges.container_user(config.container_user)
        except ValueError as exc:
            raise InstanceStartError(f"Ray node {self._address}: {exc}") from None
        # No fork server: it would be one more process per instance, each actor being its own runtime.
        return ProcessRuntime(config.owner, config.stop_grace, layers_dir=config.layers_dir, user=user,
                              bind_host=self._address)

    async def start(self, spec: InstanceSpec) -> Placed | str:
        """Fetch the model data here, start the containers, wait for /ping: where they listen, or
        the FailureReason."""
        try:
            spec = await self._fetch(spec)
            self._runtime = self._make_runtime()
            self._runtime.on_exit = lambda event: self._exited.set()
            self._instance = await self._runtime.start_instance(spec)
        except InstanceStartError as exc:
            shutil.rmtree(spec.workdir, ignore_errors=True)
            return str(exc)
        return Placed(self._node_id, self._address, {c.hostname: c.url for c in self._instance.containers})

    async def _fetch(self, spec: InstanceSpec) -> InstanceSpec:
        pending = [c for c in spec.containers if c.model_source is not None]
        if not pending:
            return spec
        config = self._config
        artifacts = ArtifactStore(config.cache_dir, config.region, config.policy)
        budget, abandoned = artifacts.budget(spec.volume_bytes), threading.Event()
        fetches = [asyncio.to_thread(prepare_container, artifacts, spec.workdir, c.hostname, c.image, c.model_source or {},
                                     c.multi_model, budget, abandoned) for c in pending]
        try:
            fetched = {c.hostname: c for c in await asyncio.gather(*fetches)}
        except InstanceStartError as exc:
            abandoned.set()
            raise InstanceStartError(f"{exc} (model data is fetched on Ray node {self._address}, which runs the instance: "
                                     f"a file:// path or local directory must exist on that node)") from None
        return replace(spec, containers=tuple(fetched.get(c.hostname, c) for c in spec.containers))

    async def watch(self) -> list[str]:
        """Return the hostnames of the exited containers once there are any."""
        while True:
            if self._runtime is not None and self._instance is not None:
                dead = self._runtime.dead_containers(self._instance)
                if dead:
                    return dead
            await rung(self._exited, WATCH_INTERVAL)
            self._exited.clear()

    async def stats(self) -> list[ContainerStats]:
        if self._runtime is None or self._instance is None:
            return []
        return await self._runtime.stats(self._instance)

    async def resident_memory(self) -> int | None:
        if self._runtime is None or self._instance is None:
            return None
        return await self._runtime.resident_memory(self._instance)

    async def stop(self) -> None:
        """Stop the containers (SIGTERM, SIGKILL after the grace) and remove the instance directory."""
        if self._runtime is not None:
            if self._instance is not None:
                await self._runtime.stop_instance(self._instance)
            await self._runtime.close()
        self._instance = self._runtime = None


def reap(owner: str, spare: Collection[str], instance: str | None) -> list[str]:
    """On a node: remove the docker containers of ``owner`` (only those of ``instance`` if given)
    except those of the instances in ``spare``; the ids of the instances whose containers went.
    A node without an engine has none."""
    from dockyard.runtime import docker_sweep
    from dockyard.runtime.docker_engine import EngineUnavailable, connect

    try:
        client = connect()
    except EngineUnavailable:
        return []
    try:
        return docker_sweep.sweep(client, owner, spare, instance)
    finally:
        client.close()

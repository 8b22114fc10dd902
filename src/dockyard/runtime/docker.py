"""The docker runtime: every instance is a pod of real OCI containers in a container engine.

An instance's containers share one network namespace, that of a small *sandbox* container
(``sleep infinity`` in the Python base image) which publishes each container's
``SAGEMAKER_BIND_TO_PORT`` on a random ``127.0.0.1`` port of the host, where the gateway reaches
it; the model containers join it (network mode ``container:<sandbox>``), so they also reach each
other on ``localhost`` and by their ``ContainerHostname``. Each model container runs as SageMaker
runs it: argument ``serve``; port 8080 when alone (8080, 8081, … side by side); a disjoint
``SAGEMAKER_SAFE_PORT_RANGE``; the model's ``Environment``; model data read-only at
``/opt/ml/model``; the instance type's CPUs and memory as its limits (every container of the
instance may use all of them, as on one SageMaker instance). Stop is SIGTERM, then SIGKILL after
the grace period (30 s).

All containers carry labels (owner = the server's state directory, endpoint, variant, instance,
hostname), so a server restarted after a crash removes whatever its predecessor left behind.
The Engine API client is blocking: every call runs on the runtime's worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import shutil
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from dockyard.images.build_base import DEBIAN_BASE, local_base
from dockyard.runtime import docker_labels, docker_sweep
from dockyard.runtime.base import (
    ContainerSpec,
    ContainerStats,
    ExitListener,
    InstanceExit,
    InstanceSpec,
    InstanceStartError,
    RunningContainer,
    RunningInstance,
    exit_description,
    failure_reason,
    ignore_exit,
    start_containers,
)
from dockyard.runtime.contract import (
    CODE_DIR,
    DEFAULT_PORT,
    MODEL_DIR,
    MULTI_MODEL_DIR,
    container_environment,
)
from dockyard.runtime.docker_engine import cgroup_memory, has_cpu_baseline, usage
from dockyard.runtime.docker_images import ImageResolver, LocalImage, check_labels
from dockyard.runtime.docker_watch import ExitWatcher, LogFollower
from dockyard.runtime.health import NotHealthy, ping, wait_healthy
from dockyard.runtime.instance_types import resources_for
from dockyard.runtime.ports import url_host

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)
T = TypeVar("T")

OWNER_LABEL, ROLE_LABEL, INSTANCE_LABEL = docker_labels.OWNER, docker_labels.ROLE, docker_labels.INSTANCE
SAFE_PORTS_START = 9000
SAFE_PORTS_PER_CONTAINER = 100
ENGINE_EVENTS_TIMEOUT = 10.0
# How long to wait for a stopped container's last output to reach its log file.
LOG_DRAIN_TIMEOUT = 5.0
# The window CPU % is measured over when the engine's reading has no earlier sample of its own.
STATS_WINDOW = 0.2


@dataclass
class DockerContainer:
    """The runtime's handle on one running model container."""

    container: Any
    follower: LogFollower

    @property
    def id(self) -> str:
        return self.container.id


class DockerRuntime:
    """The Runtime protocol (runtime/base.py) on a container engine; see the module docstring."""

    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        owner: str,
        stop_grace: float,
        registry: str | None = None,
        base_image: str | None = None,
        bind_host: str = "127.0.0.1",
        sweep_on_close: bool = True,
    ) -> None:
        self._client = client
        # False when other runtimes of the same owner share the engine (each instance's actor on a
        # Ray node has its own): closing must not remove their containers.
        self._sweep_on_close = sweep_on_close
        # Where the sandbox publishes the containers' ports: loopback, or (under Ray) the node's
        # cluster address, which the dockyard server on another machine can reach.
        self._bind_host = bind_host
        self._owner = owner
        self._stop_grace = stop_grace
        self._base_image = base_image
        self._sandbox_image: str | None = None
        self._host_cpus: int | None = None
        self._images = ImageResolver(client, registry)
        # Generous: a stop holds a thread for up to the stop grace, and starts must not queue behind stops.
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker")
        self._watcher = ExitWatcher(client)
        self._watcher.on_die = self._died_elsewhere
        self.on_exit: ExitListener = ignore_exit
        # Container id → the running instance it belongs to and the hostnames its death takes down
        # (the sandbox: all of them), for ``on_exit``; and the loop to report on.
        self._followed: dict[str, tuple[RunningInstance, tuple[str, ...]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping: set[asyncio.Future[None]] = set()
        # Instances taken over from a killed server (``adopt``) that ``remove_orphans`` spares.
        self._adopted: set[str] = set()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # --- start ---------------------------------------------------------------------------------

    async def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        if not await self._call(self._watcher.wait_connected, ENGINE_EVENTS_TIMEOUT):
            raise InstanceStartError("The container engine did not open its event stream; is the engine healthy?")
        images = await asyncio.gather(*(self._call(self._images.resolve, c.image) for c in spec.containers))
        check_labels(spec, images)
        limits = await self._call(self._limits, spec.instance_type)
        instance = RunningInstance(spec, (), extra={"sandbox": None})
        try:
            sandbox = instance.extra["sandbox"] = await self._call(self._start_sandbox, spec)
            host_ports = [_published_port(sandbox, DEFAULT_PORT + i, self._bind_host) for i in range(len(spec.containers))]
        except BaseException:
            # Also on cancellation: shielded, the removal finishes regardless.
            await asyncio.shield(self._discard(instance))
            raise

        def launch(i: int, c: ContainerSpec) -> Awaitable[RunningContainer]:
            return self._call(self._start_container, spec, i, c, images[i], sandbox, host_ports[i], limits)

        started = await start_containers(instance, launch, lambda c: self._await_healthy(spec, c), self._discard)
        self._follow(started)
        return started

    def _limits(self, instance_type: str) -> dict[str, int]:
        resources = resources_for(instance_type)
        if resources is None:
            log.info("instance type %s has no size in dockyard's table: its containers run without limits", instance_type)
            return {}
        if self._host_cpus is None:
            self._host_cpus = int(self._client.info().get("NCPU") or 1)
        # The engine refuses a CPU limit above the host's CPU count.
        cpus = min(resources.vcpus, self._host_cpus)
        if cpus < resources.vcpus:
            log.info("%s has %g vCPUs; this host has %d, so its containers get %d", instance_type,
                     resources.vcpus, self._host_cpus, cpus)
        return {"nano_cpus": int(cpus * 1e9), "mem_limit": resources.memory_bytes}

    def _sandbox_image_name(self) -> str:
        if self._sandbox_image is None:
            self._sandbox_image = local_base(self._client, self._base_image)
        if self._sandbox_image is None:
            raise InstanceStartError(
                f"No image for the instance's network sandbox: it runs `sleep infinity` in the Python base image. "
                f"Run `dockyard images build sklearn` (which makes {DEBIAN_BASE}), or set DOCKYARD_BASE_IMAGE "
                f"to a local image that has `sleep`."
            )
        return self._sandbox_image

    def _start_sandbox(self, spec: InstanceSpec) -> Any:
        """The container owning the instance's network namespace and its published ports."""
        import docker

        ports = {f"{DEFAULT_PORT + i}/tcp": (self._bind_host,) for i in range(len(spec.containers))}
        try:
            sandbox = self._client.containers.run(
                self._sandbox_image_name(),
                entrypoint=["sleep", "infinity"],
                command=[],
                name=f"dockyard-{spec.instance_id}",
                hostname=spec.instance_id[:63].rstrip("-"),
                # Containers reach each other by ContainerHostname, as on SageMaker.
                extra_hosts={c.hostname: "127.0.0.1" for c in spec.containers},
                labels=docker_labels.sandbox_labels(self._owner, spec),
                ports=ports,
                detach=True,
            )
            self._watcher.watch(sandbox.id)
            sandbox.reload()
        except docker.errors.APIError as exc:
            raise InstanceStartError(
                f"The network sandbox of instance {spec.instance_id} could not start: {exc.explanation or exc}"
            ) from None
        return sandbox

    def _start_container(
        self,
        spec: InstanceSpec,
        index: int,
        c: ContainerSpec,
        image: LocalImage,
        sandbox: Any,
        host_port: str,
        limits: dict[str, int],
    ) -> RunningContainer:
        import docker

        port = DEFAULT_PORT + index
        safe_low = SAFE_PORTS_START + index * SAFE_PORTS_PER_CONTAINER
        # A multi-model container finds the models the gateway unpacks, one by one, at /opt/ml/models.
        model_dir = MULTI_MODEL_DIR if c.multi_model else MODEL_DIR
        volumes = {str(c.model_dir.resolve()): {"bind": model_dir, "mode": "ro"}}
        code_dir = self._code_mount(c, volumes) if c.code_dir is not None else None
        environment = container_environment(c.environment, port, (safe_low, safe_low + SAFE_PORTS_PER_CONTAINER - 1),
                                            code_dir, c.multi_model)
        log_path = spec.log_dir / f"{c.hostname}.log"
        container = None
        try:
            container = self._client.containers.create(
                image.reference,
                command=["serve"],
                name=f"dockyard-{spec.instance_id}-{c.hostname}",
                labels=docker_labels.container_labels(self._owner, spec, c, port),
                environment=environment,
                volumes=volumes,
                network_mode=f"container:{sandbox.id}",
                **limits,
            )
            self._watcher.watch(container.id)
            container.start()
        except docker.errors.APIError as exc:
            if container is not None:
                self._remove(container)
            unstarted = RunningContainer(c.hostname, "", log_path)
            what = f"could not start image {c.image}: {exc.explanation or exc}"
            raise InstanceStartError(failure_reason(spec, unstarted, what)) from None
        return RunningContainer(c.hostname, f"http://{url_host(self._bind_host)}:{host_port}", log_path,
                                DockerContainer(container, LogFollower(container, log_path)), model_dir)

    @staticmethod
    def _code_mount(c: ContainerSpec, volumes: dict[str, dict[str, str]]) -> str:
        """Where SAGEMAKER_SUBMIT_DIRECTORY's code is inside the container (mounting it if needed)."""
        assert c.code_dir is not None
        code, model = c.code_dir.resolve(), c.model_dir.resolve()
        if code.is_relative_to(model):  # a repacked model: code/ inside the model data
            return str(Path(MODEL_DIR) / code.relative_to(model))
        volumes[str(code)] = {"bind": CODE_DIR, "mode": "ro"}
        return CODE_DIR

    async def _await_healthy(self, spec: InstanceSpec, running: RunningContainer) -> None:
        handle: DockerContainer = running.handle

        async def exited() -> int | None:
            return self._watcher.exit_code(handle.id)

        try:
            await wait_healthy(self._http(), running.url, spec.startup_timeout, exited)
        except NotHealthy as exc:
            what = str(exc)
            if await self._call(self._stop_for_logs, handle):
                what += f", killed for using more than the memory of one {spec.instance_type}"
            raise InstanceStartError(failure_reason(spec, running, what)) from None

    def _stop_for_logs(self, handle: DockerContainer) -> bool:
        """Kill a failed container and wait for its output to reach the log; whether it ran out of memory."""
        import docker

        try:
            handle.container.kill()
        except docker.errors.APIError:  # it had exited already
            pass
        handle.follower.join(LOG_DRAIN_TIMEOUT)
        try:
            handle.container.reload()
        except docker.errors.APIError:
            return False
        return bool(handle.container.attrs.get("State", {}).get("OOMKilled"))

    # --- stop ----------------------------------------------------------------------------------

    async def stop_instance(self, instance: RunningInstance) -> None:
        # Shielded: a stop the reconciler abandons (a server shutting down cancels its work) still
        # finishes, and close() waits for it — containers outlive the server otherwise.
        stop = asyncio.ensure_future(self._stop(instance))
        self._stopping.add(stop)
        stop.add_done_callback(self._stopping.discard)
        await asyncio.shield(stop)

    async def _stop(self, instance: RunningInstance) -> None:
        for container_id in self._ids(instance):
            self._followed.pop(container_id, None)  # stopped on purpose: no exit to report
        self._adopted.discard(instance.spec.instance_id)
        await asyncio.gather(*(self._call(self._stop_container, c.handle) for c in instance.containers))
        await self._discard(instance)
        shutil.rmtree(instance.spec.workdir, ignore_errors=True)

    def _stop_container(self, handle: DockerContainer) -> None:
        import docker

        try:
            # SIGTERM (or the image's STOPSIGNAL), then SIGKILL once the grace period is over.
            handle.container.stop(timeout=math.ceil(self._stop_grace))
        except docker.errors.APIError:  # already gone
            pass
        self._remove(handle.container)
        handle.follower.join(LOG_DRAIN_TIMEOUT)

    async def _discard(self, instance: RunningInstance) -> None:
        """Remove every container of the instance at once (SIGKILL).

        Found by label, not from ``instance``: a start cancelled half-way may have created
        containers it never recorded. Once the sandbox is gone, any later one cannot start.
        """
        await self._remove_all(await self._call(docker_sweep.labelled, self._client, self._owner, instance.spec.instance_id))

    async def _remove_all(self, containers: list[Any]) -> None:
        for wave in docker_sweep.in_order(containers):
            await asyncio.gather(*(self._call(self._remove, c) for c in wave))

    def _remove(self, container: Any) -> None:
        docker_sweep.remove(container)
        self._watcher.forget(container.id)

    # --- observe -------------------------------------------------------------------------------

    def _follow(self, instance: RunningInstance) -> None:
        """Report the (started) instance's container exits to ``on_exit`` from now on."""
        self._loop = asyncio.get_running_loop()
        # The sandbox's death takes the network of every container with it.
        everything = (instance.extra["sandbox"].id, tuple(c.hostname for c in instance.containers))
        for container_id, hostnames in [everything, *((c.handle.id, (c.hostname,)) for c in instance.containers)]:
            self._followed[container_id] = (instance, hostnames)
            code = self._watcher.exit_code(container_id)
            if code is not None:  # it died before it was followed
                self._died(container_id, code)

    @staticmethod
    def _ids(instance: RunningInstance) -> list[str]:
        sandbox = instance.extra.get("sandbox")
        return [*([sandbox.id] if sandbox is not None else []), *(c.handle.id for c in instance.containers)]

    def _died_elsewhere(self, container_id: str, code: int) -> None:
        """The event thread's news of a death, handed to the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._died, container_id, code)

    def _died(self, container_id: str, code: int) -> None:
        followed = self._followed.pop(container_id, None)
        if followed is not None:
            instance, hostnames = followed
            self.on_exit(InstanceExit(instance, hostnames, exit_description(code)))

    def dead_containers(self, instance: RunningInstance) -> list[str]:
        sandbox = instance.extra.get("sandbox")
        if sandbox is not None and self._watcher.exit_code(sandbox.id) is not None:
            # Without its network namespace no container of the instance is reachable.
            return [c.hostname for c in instance.containers]
        return [c.hostname for c in instance.containers if self._watcher.exit_code(c.handle.id) is not None]

    async def stats(self, instance: RunningInstance) -> list[ContainerStats]:
        return list(await asyncio.gather(*(self._container_stats(c) for c in instance.containers)))

    async def resident_memory(self, instance: RunningInstance) -> int | None:
        readings = await asyncio.gather(*(self._container_memory(c) for c in instance.containers))
        return None if None in readings else sum(r for r in readings if r is not None)

    async def _container_memory(self, running: RunningContainer) -> int | None:
        # The engine's stats call takes a second or more (it waits for a CPU sample); the cgroup's
        # own files answer at once when the engine runs on this machine.
        reading = await asyncio.to_thread(cgroup_memory, running.handle.id)
        if reading is None:
            reading = (await self._container_stats(running)).memory_bytes
        return reading

    async def _container_stats(self, running: RunningContainer) -> ContainerStats:
        import docker

        try:
            reading = await self._call(self._client.api.stats, running.handle.id, stream=False)
            earlier = None
            if not has_cpu_baseline(reading):
                # A reading without its own earlier sample (Podman): take a second one to compare.
                await asyncio.sleep(STATS_WINDOW)
                earlier, reading = reading, await self._call(self._client.api.stats, running.handle.id, stream=False)
        except docker.errors.APIError:  # the container is gone
            return ContainerStats(running.hostname, None, None)
        return ContainerStats(running.hostname, *usage(reading, earlier))

    async def adopt(self) -> list[RunningInstance]:
        """Instances a killed server left running, each taken over when it is whole and every
        container still answers /ping; the rest are left to ``remove_orphans``."""
        if not await self._call(self._watcher.wait_connected, ENGINE_EVENTS_TIMEOUT):
            return []
        found = await self._call(self._client.containers.list, filters={"label": f"{OWNER_LABEL}={self._owner}"},
                                 ignore_removed=True)  # one gone between listing and inspection is not adopted
        by_instance: dict[str, list[Any]] = {}
        for c in found:
            by_instance.setdefault(c.labels.get(INSTANCE_LABEL, ""), []).append(c)
        adopted = [i for i in await asyncio.gather(*map(self._adopt, by_instance.values())) if i is not None]
        self._adopted = {i.spec.instance_id for i in adopted}
        return adopted

    async def _adopt(self, containers: list[Any]) -> RunningInstance | None:
        sandbox = next((c for c in containers if c.labels.get(ROLE_LABEL) == "sandbox"), None)
        models = [c for c in containers if c.labels.get(ROLE_LABEL) == "container"]
        models.sort(key=lambda c: int(c.labels.get(docker_labels.PORT, 0)))
        spec = docker_labels.described_instance(sandbox.labels, [c.labels for c in models]) if sandbox else None
        if spec is None:
            return None
        for c in (sandbox, *models):
            self._watcher.watch(c.id)  # first: an exit from now on is seen
        try:
            host = url_host(self._bind_host)
            urls = [f"http://{host}:{_published_port(sandbox, int(c.labels[docker_labels.PORT]), self._bind_host)}" for c in models]
        except InstanceStartError:
            return None
        if any(status != 200 for status in await asyncio.gather(*(ping(self._http(), url) for url in urls))):
            return None
        since = int(time.time())  # the log file has the output from before the restart already
        running = tuple(
            RunningContainer(c.hostname, url, spec.log_dir / f"{c.hostname}.log",
                             DockerContainer(model, LogFollower(model, spec.log_dir / f"{c.hostname}.log", since)),
                             MULTI_MODEL_DIR if c.multi_model else MODEL_DIR)
            for c, model, url in zip(spec.containers, models, urls)
        )
        log.info("adopted instance %s of endpoint %s, still running", spec.instance_id, spec.endpoint)
        adopted = RunningInstance(spec, running, extra={"sandbox": sandbox})
        self._follow(adopted)
        return adopted

    async def remove_orphans(self) -> None:
        await self._remove_owned(spare=self._adopted)

    async def _remove_owned(self, spare: set[str]) -> None:
        found = [c for c in await self._call(docker_sweep.labelled, self._client, self._owner)
                 if c.labels.get(INSTANCE_LABEL) not in spare]
        if found:
            log.info("removing %d container(s) of no running instance", len(found))
            await self._remove_all(found)

    async def close(self) -> None:
        await asyncio.gather(*self._stopping, return_exceptions=True)
        if self._sweep_on_close:
            # Whatever is still labelled ours belongs to no instance any more: a graceful stop leaves nothing.
            await self._remove_owned(spare=set())
        if self._session is not None:
            await self._session.close()
        await self._call(self._watcher.close)
        self._pool.shutdown(wait=False)
        self._client.close()


def _published_port(sandbox: Any, port: int, bind_host: str) -> str:
    bindings = (sandbox.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in (bind_host, "", "0.0.0.0"):
            return binding["HostPort"]
    raise InstanceStartError(f"The engine did not publish port {port} of the instance's sandbox {sandbox.name}.")

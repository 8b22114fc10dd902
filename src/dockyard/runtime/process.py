"""The process runtime: every container is a child process on a free loopback port.

Needs nothing but Python. Managed images run dockyard's own ``serving`` model server with the
framework installed in this environment (on the interpreter of a cached virtualenv layer when the
model brings a ``requirements.txt``, see ``layers``); a local directory with an executable ``serve`` runs
as a bring-your-own container (an extension for development and for ``dockyard check``). Any
other image cannot run here and fails the instance with a FailureReason saying so.

Each running container has a task awaiting its exit (asyncio's child watcher; for a forked one,
the fork server's report), which tells ``on_exit`` the moment it ends.

Children get SIGKILL when the server dies (parent-death signal) and carry a ``DOCKYARD_OWNER``
marker in their environment so a restarted server can sweep any that survived.

Managed containers of fork-safe frameworks are forked from a pre-warmed parent (``forkserver``)
instead of spawned, unless the model's Environment sets variables that take effect at import.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import site
import sys
import sysconfig
from pathlib import Path

import aiohttp

import dockyard
from dockyard.images import catalogue
from dockyard.runtime import contract, processes
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
from dockyard.runtime.forkserver import ForkedProcess, ForkServer
from dockyard.runtime.health import NotHealthy, wait_healthy
from dockyard.runtime.layers import LayerError, Layers, requirement_files
from dockyard.runtime.memory_watch import MemoryWatch
from dockyard.runtime.ports import free_port, free_range, url_host
from dockyard.runtime.privileges import ContainerUser, hand_over, unreachable

SAFE_PORT_RANGE_SIZE = 10
# All a container process takes from the server's environment: where programs are, the locale, and
# how to reach the network (proxies, CA bundles). Never the rest: credentials, tokens, DOCKYARD_*.
INHERITED = (
    "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)
# Variables read when the interpreter starts or a library is imported (thread pools, allocators,
# the import path): a fork server imported everything already, so a model setting one is spawned.
IMPORT_TIME_PREFIXES = (
    "PYTHON", "LD_", "MALLOC_", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "GOTO", "BLIS_", "VECLIB_",
    "NUMEXPR_", "NUMBA_", "JOBLIB_", "LOKY_", "SKLEARN_", "SCIPY_", "NPY_", "NUMPY_", "TORCH_", "CUDA_",
)

log = logging.getLogger("dockyard.runtime.process")


def local_container_dir(image: str) -> Path | None:
    """A BYOC directory image (``file:///dir`` or ``/dir``) holding an executable ``serve``."""
    path = Path(image.removeprefix("file://"))
    if path.is_absolute() and (path / "serve").is_file():
        return path
    return None


def command_for(image: str) -> tuple[list[str], dict[str, str], Path | None]:
    """The command line, extra environment and working directory that run ``image`` here."""
    managed = catalogue.resolve(image)
    if managed is not None:
        if managed.installed_version() is None:
            raise InstanceStartError(
                f"Image {image} is dockyard's managed {managed.name} image, but {managed.distribution} "
                f"is not installed where dockyard runs: pip install 'dockyard[{managed.extra}]'."
            )
        if catalogue.gpu_tag(image):
            log.info("Image %s is a GPU build; the process runtime serves it on the CPU", image)
        return [sys.executable, "-m", "dockyard.serving", "serve"], {"DOCKYARD_FRAMEWORK": managed.framework, **_import_path()}, None
    directory = local_container_dir(image)
    if directory is not None:
        return [str(directory / "serve"), "serve"], {}, directory
    raise InstanceStartError(
        f"Image {image} cannot run on the process runtime: it runs dockyard's managed images "
        f"(see `dockyard images`) and local directories with a `serve` executable. "
        f"Start the server with --runtime docker to run OCI images."
    )


def _import_path() -> dict[str, str]:
    """PYTHONPATH for a managed container: the server's own, so that the container imports the
    packages the server found installed (the managed image is the server's Python environment), and
    the very dockyard the server runs when the interpreter would not find it by itself (a source checkout)."""
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = Path(dockyard.__file__).resolve().parent.parent
    site_dirs = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root not in site_dirs and str(root) not in entries:
        entries.append(str(root))
    return {"PYTHONPATH": os.pathsep.join(entries)} if entries else {}


def process_environment(
    environment: dict[str, str],
    extra_env: dict[str, str],
    port: int,
    safe_ports: tuple[int, int],
    model_dir: Path,
    code_dir: Path | None = None,
    multi_model: bool = False,
    bind_host: str = "127.0.0.1",
    model_layers: Path | None = None,
) -> dict[str, str]:
    """A container process's environment: the contract's (``model_dir`` stands for /opt/ml/model,
    named by ``DOCKYARD_MODEL_DIR``, which the managed server honours), listening on ``bind_host``
    (loopback; a Ray node's cluster address), and of the server's own environment only ``INHERITED``."""
    return {
        **{name: os.environ[name] for name in INHERITED if name in os.environ},
        **contract.container_environment(environment, port, safe_ports, str(code_dir) if code_dir else None, multi_model),
        **extra_env,
        "DOCKYARD_BIND_HOST": bind_host,
        "DOCKYARD_MODEL_DIR": str(model_dir),
        "PYTHONUNBUFFERED": "1",
        # A multi-model container installs each model's requirements.txt into ``model_layers``
        # (shared by the server's multi-model containers), else beside its models.
        **({"DOCKYARD_LAYERS_DIR": str(model_layers or model_dir.parent / "layers")} if multi_model else {}),
    }


def forkable(container: ContainerSpec, extra_env: dict[str, str]) -> bool:
    """Whether ``container`` may be forked from a fork server: a managed image (it names its
    framework) whose model sets nothing that takes effect only at start-up."""
    return "DOCKYARD_FRAMEWORK" in extra_env and not any(
        name.upper().startswith(IMPORT_TIME_PREFIXES) for name in container.environment
    )


class ProcessRuntime:
    name = "process"

    def __init__(
        self, owner: str, stop_grace: float, layers_dir: Path | None = None, user: ContainerUser | None = None,
        zygotes_dir: Path | None = None, bind_host: str = "127.0.0.1",
    ) -> None:
        self._owner = owner
        # Where containers listen and the gateway reaches them: loopback, or (under Ray) the
        # node's cluster address, which the dockyard server on another machine can reach.
        self._bind_host = bind_host
        self._stop_grace = stop_grace
        # Who containers run as (privileges.py); None: as the server.
        self._user = user
        # Where requirements.txt layers of managed images go; None: requirements are not installed.
        self._layers = Layers(layers_dir) if layers_dir is not None else None
        self._session: aiohttp.ClientSession | None = None
        # Serverless instances' MemorySizeInMB, enforced on resident memory.
        self.memory = MemoryWatch()
        # Where fork servers log; None: every container is spawned.
        self._forks = ForkServer(zygotes_dir, user, self._zygote_environment) if zygotes_dir is not None else None
        self.on_exit: ExitListener = ignore_exit

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            await asyncio.to_thread(hand_over, spec.workdir, self._user)
        instance = await start_containers(
            RunningInstance(spec, ()),
            lambda _, c: self._launch(spec, c),
            lambda c: self._await_healthy(spec, c),
            self.stop_instance,
        )
        self.memory.watch(instance)
        self._follow_exits(instance)
        return instance

    def _follow_exits(self, instance: RunningInstance) -> None:
        """Tell ``on_exit`` when a container of the (started) instance ends, until it is stopped."""
        waits = instance.extra["exits"] = [asyncio.ensure_future(c.handle.wait()) for c in instance.containers]
        for container, wait in zip(instance.containers, waits):
            wait.add_done_callback(functools.partial(self._exited, instance, container))

    def _exited(self, instance: RunningInstance, container: RunningContainer, wait: asyncio.Future[int]) -> None:
        if wait.cancelled():  # stopped on purpose
            return
        # The memory watchdog's reason when it was the one that killed it.
        what = self.memory.stopped.pop(container.url, None) or exit_description(wait.result())
        self.on_exit(InstanceExit(instance, (container.hostname,), what))

    async def _launch(self, spec: InstanceSpec, container: ContainerSpec) -> RunningContainer:
        command, extra_env, cwd = command_for(container.image)
        requirements = requirement_files(container.code_dir, container.model_dir)
        if self._layers is not None and requirements and catalogue.resolve(container.image) is not None:
            # A managed image runs on the interpreter of a layer holding its requirements.txt.
            log_path = spec.log_dir / f"{container.hostname}.log"
            try:
                command[0] = str(await self._layers.python_for(requirements, log_path, spec.startup_timeout))
            except LayerError as exc:
                what = f"could not install its requirements.txt ({exc})"
                raise InstanceStartError(failure_reason(spec, RunningContainer(container.hostname, "", log_path), what)) from None
        if self._user is not None:
            self._check_reachable(container, command, cwd)
        try:
            return await self._spawn(spec, container, command, extra_env, cwd)
        except OSError as exc:
            raise InstanceStartError(f"Container {container.hostname} could not start {command[0]}: {exc}") from None

    async def _spawn(
        self, spec: InstanceSpec, container: ContainerSpec, command: list[str], extra_env: dict[str, str], cwd: Path | None
    ) -> RunningContainer:
        port = free_port()
        low, high = free_range(SAFE_PORT_RANGE_SIZE)
        env = process_environment(container.environment, extra_env, port, (low, high), container.model_dir,
                                  container.code_dir, container.multi_model, self._bind_host,
                                  await asyncio.to_thread(self._model_layers) if container.multi_model else None)
        env[processes.OWNER_VARIABLE] = self._owner
        if self._user is not None:
            env["HOME"] = str(spec.workdir / container.hostname)  # the server's home is not the container's
        log_path = spec.log_dir / f"{container.hostname}.log"
        proc: asyncio.subprocess.Process | ForkedProcess | None = None
        if self._forks is not None and forkable(container, extra_env):
            proc = await self._forks.fork(command[0], extra_env["DOCKYARD_FRAMEWORK"], extra_env, env,
                                          spec.workdir, log_path, spec.startup_timeout)
        if proc is None:
            proc = await processes.spawn(command, cwd or spec.workdir, env, log_path, self._user)
        return RunningContainer(container.hostname, f"http://{url_host(self._bind_host)}:{port}", log_path, proc)

    def _model_layers(self) -> Path | None:
        """The directory every multi-model container of this runtime installs its models'
        requirements into (``serving/layers.py``: one layer per digest of the requirements, so a
        replacement instance, or another endpoint, reuses what one installed). Owned by the
        containers' user, who writes it; None without a layers directory."""
        if self._layers is None:
            return None
        path = self._layers.root / "models"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._user is not None:
            os.chown(path, self._user.uid, self._user.gid)
            path.chmod(0o700)
        return path

    def _zygote_environment(self, extra_env: dict[str, str]) -> dict[str, str]:
        """A fork server's own environment: what every container of its image shares, and the
        owner marker, which the containers forked from it carry in /proc/<pid>/environ too."""
        return {
            **{name: os.environ[name] for name in INHERITED if name in os.environ},
            **extra_env,
            processes.OWNER_VARIABLE: self._owner,
            "PYTHONUNBUFFERED": "1",
        }

    def _check_reachable(self, container: ContainerSpec, command: list[str], cwd: Path | None) -> None:
        """Fail the start, naming the path, when the container's user cannot read what it runs."""
        assert self._user is not None
        needed = [Path(command[0]).resolve(), *([cwd] if cwd else []), *([container.code_dir] if container.code_dir else [])]
        if cwd is None:  # dockyard's managed server: the interpreter's standard library and dockyard itself
            needed += [Path(sysconfig.get_path("stdlib")), Path(dockyard.__file__).resolve().parent]
        blocked = unreachable(self._user, needed)
        if blocked is not None:
            raise InstanceStartError(
                f"Container {container.hostname} cannot start: the server runs as root, so containers run as user "
                f"{self._user.name} (DOCKYARD_CONTAINER_USER), who cannot read {blocked}. Install Python and dockyard "
                f"where that user can read them, keep the image there, or set DOCKYARD_CONTAINER_USER to another "
                f"user ('root' runs containers as root)."
            )

    async def _await_healthy(self, spec: InstanceSpec, container: RunningContainer) -> None:
        proc: asyncio.subprocess.Process | ForkedProcess = container.handle

        async def exited() -> int | None:
            return proc.returncode

        try:
            await wait_healthy(self._http(), container.url, spec.startup_timeout, exited)
        except NotHealthy as exc:
            raise InstanceStartError(failure_reason(spec, container, str(exc))) from None

    async def stop_instance(self, instance: RunningInstance) -> None:
        for wait in instance.extra.pop("exits", ()):
            wait.cancel()
        self.memory.unwatch(instance)
        await asyncio.gather(*(processes.stop_group(c.handle, self._stop_grace) for c in instance.containers))
        shutil.rmtree(instance.spec.workdir, ignore_errors=True)

    def dead_containers(self, instance: RunningInstance) -> list[str]:
        return [c.hostname for c in instance.containers if c.handle.returncode is not None]

    async def stats(self, instance: RunningInstance) -> list[ContainerStats]:
        usage = await asyncio.gather(*(processes.group_usage(c.handle.pid) for c in instance.containers))
        return [ContainerStats(c.hostname, cpu, rss) for c, (cpu, rss) in zip(instance.containers, usage)]

    async def resident_memory(self, instance: RunningInstance) -> int | None:
        pids = [c.handle.pid for c in instance.containers]
        return await asyncio.to_thread(lambda: sum(map(processes.group_rss, pids)))

    async def adopt(self) -> list[RunningInstance]:
        # Nothing to adopt: a container process dies with its server (parent-death signal).
        return []

    async def remove_orphans(self) -> None:
        processes.kill_pids(processes.owned_pids(self._owner))

    async def close(self) -> None:
        if self._forks is not None:
            await self._forks.close(self._stop_grace)
        if self._session is not None:
            await self._session.close()

"""Multi-model endpoints, the platform side: which models each instance has, and loading them.

Per instance (``InstanceModels``): a disk cache of unpacked models (``<model dir>/<name>/``, one
download each, least recently used removed beyond the disk budget) and the set of models its
container has loaded, in least-recently-used order. A request for a loaded model costs one dict
lookup; a cold one downloads (``artifacts/``) and loads the model through the multi-model
container contract (``POST /models``), where a 507 (out of memory) unloads the least recently used
model and tries again; before that, ``model_memory`` unloads models so that the load fits in the
instance's memory (``MemoryBudget``).

Concurrent first requests for one cold model share one download and one load (single flight);
different models load in parallel, at most ``PARALLEL_LOADS`` at once per server. A request waits
for its model at most ``load_wait`` seconds, then gets ``ModelNotReadyException`` (429, which
clients retry) while the load carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import posixpath
import shutil
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import Gauge

from dockyard import errors
from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.store import ArtifactStore
from dockyard.gateway.model_memory import Lease, MemoryBudget
from dockyard.gateway.model_metrics import ModelMetrics

log = logging.getLogger(__name__)

PARALLEL_LOADS = 4
# Management calls (load, unload) to a container: a load may take as long as an invocation.
_MANAGEMENT_TIMEOUT = 120.0


class LoadFailed(Exception):
    """The container did not load a model: its status (0: no answer) and message; ``gone``: the
    connection was refused or dropped, as when the container died loading it."""

    def __init__(self, status: int, message: str, gone: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.gone = status, message, gone


@dataclass(frozen=True)
class MultiModelRoute:
    """What the gateway needs to serve a multi-model variant (handed over by the reconciler)."""

    # The ModelDataUrl prefix, ending in "/"; a TargetModel is a path under it.
    prefix: str
    # ModelCacheSetting Enabled: models stay loaded until memory is needed; Disabled: one use.
    cache_enabled: bool
    # Per instance id: the host directory models are unpacked into, and that directory as the
    # container sees it.
    model_dirs: Mapping[str, tuple[Path, str]]
    # An instance's model data limit (VolumeSizeInGB or the server's cap); None: the server's.
    volume_bytes: int | None = None
    # The instance type's memory: models are unloaded before the container would outgrow it.
    memory_bytes: int | None = None


def target_model(endpoint: str, value: str | None) -> str:
    """The TargetModel of an invocation of a multi-model endpoint, checked to stay under the prefix."""
    if not value:
        raise errors.runtime_validation(
            f"Endpoint {endpoint} is a multi-model endpoint: name the model to invoke with TargetModel "
            "(its path under the endpoint's model data prefix, e.g. model-a.tar.gz)."
        )
    normal = posixpath.normpath(value)
    if value.startswith("/") or "\\" in value or normal == "." or normal.split("/")[0] == "..":
        raise errors.runtime_validation(
            f"TargetModel {value} is not a relative path under the model data prefix of endpoint {endpoint}."
        )
    return normal


def model_name(target: str) -> str:
    """The name a model is loaded under in the container: safe in a URL path, unique per target."""
    return hashlib.sha256(target.encode()).hexdigest()[:32]


@dataclass
class ModelStats:
    """What ``dockyard stats --models`` shows of one model on one instance."""

    hits: int = 0
    misses: int = 0


class InstanceModels:
    """One instance's unpacked and loaded models."""

    def __init__(self, endpoint: str, instance_id: str, host_dir: Path, container_dir: str,
                 memory_bytes: int | None) -> None:
        self.endpoint, self.instance_id = endpoint, instance_id
        self.host_dir, self.container_dir = host_dir, container_dir
        self.stats: dict[str, ModelStats] = {}
        # TargetModel → model name, least recently used first.
        self.loaded: OrderedDict[str, str] = OrderedDict()
        # TargetModel → bytes unpacked on disk, least recently used first.
        self.unpacked: OrderedDict[str, int] = OrderedDict()
        # TargetModel → its load in progress (single flight).
        self.loading: dict[str, asyncio.Future[str]] = {}
        # TargetModel → invocations using it now (waiting for its load, or sent to it).
        self.in_use: dict[str, int] = {}
        # TargetModel → its unload in progress: a load of it waits, or the container would answer
        # 409 (still loaded) and then drop it.
        self.unloading: dict[str, asyncio.Task[None]] = {}
        self.memory = MemoryBudget(memory_bytes)
        # No longer routed (stopped, its directory removed): loads still queued must not start.
        self.retired = False


# The container's resident memory of an instance (endpoint, instance id); None: unknown.
MemoryReader = Callable[[str, str], Awaitable[int | None]]


class MultiModels:
    """Every multi-model instance's models; the gateway calls ``model_for`` per invocation."""

    def __init__(self, artifacts: ArtifactStore, load_wait: float, metrics: ModelMetrics,
                 memory_of: MemoryReader | None = None) -> None:
        self._artifacts = artifacts
        self.load_wait = load_wait
        self.metrics = metrics
        # Set by the composition root: reads a container's RSS through the runtime.
        self.memory_of = memory_of
        self._instances: dict[str, InstanceModels] = {}
        self._parallel = asyncio.Semaphore(PARALLEL_LOADS)
        self._session: aiohttp.ClientSession | None = None
        # Work that goes on after a request is answered (unloads, memory readings after a load).
        self._background: set[asyncio.Task[None]] = set()

    def instance(self, route: MultiModelRoute, endpoint: str, instance_id: str) -> InstanceModels:
        models = self._instances.get(instance_id)
        if models is None:
            host_dir, container_dir = route.model_dirs[instance_id]
            models = self._instances[instance_id] = InstanceModels(endpoint, instance_id, host_dir, container_dir,
                                                                   route.memory_bytes)
        return models

    def retain(self, instance_ids: Iterable[str]) -> None:
        """Forget instances no longer routed (their directories go with the instance)."""
        keep = set(instance_ids)
        for gone in [i for i in self._instances if i not in keep]:
            models = self._instances.pop(gone)
            models.retired = True
            _forget(self.metrics.loaded, models.endpoint, gone)

    def describe(self, endpoint: str) -> list[dict[str, Any]]:
        """Per instance and model of ``endpoint``: loaded or not, hits, misses, memory."""
        return [
            {"instance": m.instance_id, "model": target, "loaded": target in m.loaded, "hits": st.hits,
             "misses": st.misses, "memory_bytes": m.memory.measured.get(target)}
            for m in self._instances.values() if m.endpoint.lower() == endpoint.lower()
            for target, st in sorted(m.stats.items())
        ]

    async def model_for(self, route: MultiModelRoute, endpoint: str, instance_id: str, url: str, target: str) -> str:
        """The name under which ``target`` is loaded in the container at ``url``; loads it first
        if need be, waiting at most ``load_wait`` (then ModelNotReadyException). The model is in
        use (never unloaded to make room) until ``done``."""
        models = self.instance(route, endpoint, instance_id)
        stats = models.stats.get(target) or models.stats.setdefault(target, ModelStats())
        models.in_use[target] = models.in_use.get(target, 0) + 1
        name = models.loaded.get(target)
        if name is not None:
            models.loaded.move_to_end(target)
            stats.hits += 1
            self.metrics.cache.labels(endpoint, "hit").inc()
            return name
        try:
            return await self._cold(route, models, url, target, stats)
        except BaseException:
            _release(models, target)
            raise

    def forget(self, instance_id: str, target: str) -> None:
        """The container answered that ``target`` is not loaded: the next invocation loads it."""
        models = self._instances.get(instance_id)
        if models is not None and models.loaded.pop(target, None) is not None:
            self.metrics.loaded.labels(models.endpoint, instance_id).set(len(models.loaded))

    def done(self, instance_id: str, url: str, target: str, unload: bool) -> None:
        """The invocation of ``target`` that ``model_for`` gave is answered; ``unload``
        (ModelCacheSetting Disabled): unload it unless another invocation uses it."""
        models = self._instances.get(instance_id)
        if models is None:
            return
        if not _release(models, target) and unload and target in models.loaded:
            self._later(self._unload(models, url, target))

    async def _cold(self, route: MultiModelRoute, models: InstanceModels, url: str, target: str,
                    stats: ModelStats) -> str:
        endpoint = models.endpoint
        stats.misses += 1
        self.metrics.cache.labels(endpoint, "miss").inc()
        load = models.loading.get(target)
        if load is None:
            load = asyncio.ensure_future(self._load(route, models, url, target))
            models.loading[target] = load
            load.add_done_callback(lambda f: _settled(models.loading, target, f))
        start = time.perf_counter()
        try:
            return await asyncio.wait_for(asyncio.shield(load), self.load_wait)
        except asyncio.TimeoutError:
            raise errors.model_not_ready(
                f"Model {target} is still loading; retry the request shortly."
            ) from None
        finally:
            self.metrics.loading_wait.labels(endpoint).observe(time.perf_counter() - start)

    def observe(self, endpoint: str, target: str, seconds: float, failed: bool) -> None:
        """One invocation of ``target``, as its per-model series count it."""
        self.metrics.invocations.labels(endpoint, target).inc()
        if failed:
            self.metrics.errors.labels(endpoint, target).inc()
        self.metrics.latency.labels(endpoint, target).observe(seconds)

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- loading -----------------------------------------------------------------------------

    async def _load(self, route: MultiModelRoute, models: InstanceModels, url: str, target: str) -> str:
        name = model_name(target)
        async with self._parallel:
            _check_routed(models, target)
            if target in models.unpacked:
                models.unpacked.move_to_end(target)
            else:
                start = time.perf_counter()
                size = await asyncio.to_thread(self._fetch, route, models.host_dir / name, target)
                self.metrics.downloading.labels(models.endpoint).observe(time.perf_counter() - start)
                if models.retired:  # stopped while the model was unpacked into its directory
                    shutil.rmtree(models.host_dir / name, ignore_errors=True)
                    _check_routed(models, target)
                models.unpacked[target] = size
                self._trim_disk(models, route, keep=target)
            if (unloading := models.unloading.get(target)) is not None:
                await unloading
            lease = await self._admit(models, url, target)
            try:
                start = time.perf_counter()
                await self._post_model(models, url, target, f"{models.container_dir}/{name}")
                self.metrics.loading.labels(models.endpoint).observe(time.perf_counter() - start)
            except BaseException:
                await models.memory.settle(lease, self._reader(models), loaded=False)
                raise
        models.loaded[target] = name
        self.metrics.loaded.labels(models.endpoint, models.instance_id).set(len(models.loaded))
        # The reading after the load (its growth) need not keep the request waiting.
        self._later(models.memory.settle(lease, self._reader(models), loaded=True))
        return name

    def _reader(self, models: InstanceModels) -> Callable[[], Awaitable[int | None]]:
        async def read() -> int | None:
            return None if self.memory_of is None else await self.memory_of(models.endpoint, models.instance_id)

        return read

    async def _admit(self, models: InstanceModels, url: str, target: str) -> Lease:
        """Room for one more model in the instance's memory, least recently used ones unloaded (or,
        all in use, the load waits until one is free)."""

        async def evict() -> bool:
            victim = _victim(models)
            if victim is None:
                return False
            await self._unload(models, url, victim)
            return True

        def busy() -> bool:
            return any(t in models.in_use for t in models.loaded)

        return await models.memory.admit(target, self._reader(models), evict, busy)

    def _unload(self, models: InstanceModels, url: str, target: str) -> asyncio.Task[None]:
        """Unload ``target``: out of ``loaded`` at once, the container told by the task returned."""
        name = models.loaded.pop(target)
        self.metrics.loaded.labels(models.endpoint, models.instance_id).set(len(models.loaded))
        models.memory.unloading()

        async def unload() -> None:
            start = time.perf_counter()
            try:
                await self._delete(url, name)
            finally:
                models.memory.unloaded()
                models.unloading.pop(target, None)
            self.metrics.unloading.labels(models.endpoint).observe(time.perf_counter() - start)

        task = models.unloading[target] = asyncio.ensure_future(unload())
        return task

    def _fetch(self, route: MultiModelRoute, dest: Path, target: str) -> int:
        """Download and unpack one model (blocking: runs in a thread); its size on disk."""
        shutil.rmtree(dest, ignore_errors=True)  # a partial unpack from an earlier failure
        url = route.prefix + target
        try:
            self._artifacts.materialize_target_model(route.prefix, target, dest, self._artifacts.budget(route.volume_bytes))
        except ArtifactError as exc:
            bucket, key = _bucket_and_key(url)
            raise errors.runtime_validation(
                f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there is an "
                f"object located at the URL and that the role passed to CreateModel has permissions to "
                f"download the model. ({exc})"
            ) from None
        return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())

    def _trim_disk(self, models: InstanceModels, route: MultiModelRoute, keep: str) -> None:
        """Remove unpacked models that are not loaded, least recently used first, while the disk
        cache is over the instance's budget."""
        budget = self._artifacts.budget(route.volume_bytes).limit
        for target in list(models.unpacked):
            if sum(models.unpacked.values()) <= budget:
                return
            if target != keep and target not in models.loaded:
                del models.unpacked[target]
                shutil.rmtree(models.host_dir / model_name(target), ignore_errors=True)

    async def _post_model(self, models: InstanceModels, url: str, target: str, path: str) -> None:
        """POST /models; on 507 unload the least recently used model and try again."""
        name = model_name(target)
        while True:
            status, text, gone = await self._call("POST", url + "/models", {"model_name": name, "url": path})
            if status in (200, 201):
                return
            if status == 409:
                # The container has it already — or is still loading it, for a load given up on
                # after the management timeout: only a model it describes is loaded (else every
                # invocation would answer 404 "not loaded" until that load ends).
                if (await self._call("GET", f"{url}/models/{name}"))[0] == 200:
                    return
                raise errors.model_not_ready(
                    f"Model {target} is still loading in its container, after an earlier load outlasted "
                    f"{_MANAGEMENT_TIMEOUT:g} s; retry the request shortly."
                )
            if status == 507 and (victim := _victim(models)) is not None:
                log.info("container out of memory loading %s: unloading %s", name, victim)
                await self._unload(models, url, victim)
                continue
            raise LoadFailed(status, _container_message(text), gone)

    async def _delete(self, url: str, name: str) -> None:
        status, text, _ = await self._call("DELETE", f"{url}/models/{name}")
        if status not in (200, 404):
            log.warning("unloading model %s from %s answered %d: %s", name, url, status, text)

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, str, bool]:
        """The container's status (0: no answer) and body, and whether the connection was refused
        or dropped (the container is gone, or going)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_MANAGEMENT_TIMEOUT))
        try:
            async with self._session.request(method, url, json=body) as resp:
                return resp.status, await resp.text(), False
        except asyncio.TimeoutError:
            return 0, f"the container did not answer {method} {url} within {_MANAGEMENT_TIMEOUT:g} s", False
        except aiohttp.ClientError as exc:
            return 0, f"the container could not be reached: {exc}", True


def _check_routed(models: InstanceModels, target: str) -> None:
    """A load waiting for its turn on an instance that has since been stopped (endpoint deleted,
    instance replaced) does not start: unpacking would recreate the removed directory. The client
    retries the 503 (on the replacement, or learns the endpoint is gone)."""
    if models.retired:
        raise errors.service_unavailable(
            f"The instance of endpoint {models.endpoint} that model {target} was to load on has stopped; "
            "retry the request."
        )


def _victim(models: InstanceModels) -> str | None:
    """The least recently used loaded model that no invocation is using."""
    return next((t for t in models.loaded if t not in models.in_use), None)


def _release(models: InstanceModels, target: str) -> int:
    """One use of ``target`` fewer; the uses left. Unused, a loaded model may be unloaded: a load
    waiting for room looks again."""
    left = models.in_use.pop(target, 1) - 1
    if left:
        models.in_use[target] = left
    elif target in models.loaded:
        models.memory.freed()
    return left


def _settled(loading: dict[str, asyncio.Future[str]], target: str, future: asyncio.Future[str]) -> None:
    loading.pop(target, None)
    if not future.cancelled():
        future.exception()  # retrieved: a failed load is reported to its waiters, not logged


def _forget(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


def _container_message(text: str) -> str:
    """The message of a container's error body: the contract's ``{"code": …, "message": …}``, or
    the body as it is."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else text


def _bucket_and_key(url: str) -> tuple[str, str]:
    """SageMaker's error names the S3 bucket and key; a local path is its own key."""
    if url.startswith("s3://"):
        bucket, _, key = url[len("s3://"):].partition("/")
        return bucket, key
    return "local", url

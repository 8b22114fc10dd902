"""The ray runtime: instances run across the nodes of a Ray cluster; the dockyard server (control
plane, store, gateway) stays where it is and joins the cluster as a driver.

One instance is one placement group of one ``STRICT_PACK`` bundle sized by its ``InstanceType``
(its vCPUs as ``CPU``, its memory as ``memory``), plus one unit of the instance family's custom
resource (``ml.m5``) when some node of the cluster offers that resource: an operator pins a
family to nodes, and caps how many of its instances a node takes, by starting those nodes with
``--resources '{"ml.m5": 4}'``. In the group runs one actor (``ray_actor.InstanceHost``) that
fetches the model data on its node and starts the containers there, listening on the node's
cluster address; the gateway routes to those addresses.

A group the cluster cannot place within ``capacity_timeout`` fails the start with SageMaker's
insufficient-capacity FailureReason. Each instance has one pending call to its actor's ``watch``:
it returns when a container exits and fails when the actor (or its node) dies; either way the
instance is reported dead at once (``on_exit`` tells the reconciler, which replaces it on a node
that is still alive). Actors and placement groups belong to this server's Ray job: when the
server dies, Ray removes them.

Docker containers (``--ray-containers docker``) are the node engine's, not the actor's children:
an actor that dies (its process killed, its node's Ray gone while the machine lives on) leaves
them running. They carry the server's owner label and their instance's id, so a task pinned to
their node (``ray_actor.reap``) removes them: those of a dead actor's instance when it is stopped
(after its replacement started), and on every node at server start (a killed predecessor's) and
at close (whatever a stop left).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Collection, Mapping
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from dockyard.runtime.base import (
    ContainerStats,
    ExitListener,
    InstanceExit,
    InstanceSpec,
    InstanceStartError,
    RunningContainer,
    RunningInstance,
    ignore_exit,
)
from dockyard.runtime.instance_types import resources_for
from dockyard.runtime.ray_actor import InstanceHost, NodeConfig, Placed, reap

log = logging.getLogger(__name__)

# SageMaker's FailureReason when no instance of the requested type can be provisioned.
INSUFFICIENT_CAPACITY = (
    "Unable to provision requested ML compute capacity due to InsufficientInstanceCapacity error. "
    "Please retry using a different ML instance type or after some time."
)
_FAMILY = re.compile(r"(ml\.[a-z0-9-]+)\.[a-z0-9]+")
# An instance type dockyard cannot size still takes a CPU of its node.
_UNSIZED = {"CPU": 1.0}
# How long an actor call made while stopping (or for stats) may take beyond the stop grace.
_CALL_MARGIN = 10.0
# How long the head's address has to accept a connection when the server starts.
_PROBE_TIMEOUT = 5.0
# How long a node's reaping task may take: a worker process to start, then removals by SIGKILL.
_REAP_TIMEOUT = 60.0


def connect(address: str) -> None:
    """Join the cluster at ``address`` (``auto``, or the head's ``host:port``) as a driver;
    ConnectionError when it does not answer."""
    if address != "auto":
        # Ray itself retries an address that does not answer for minutes: look first, briefly.
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT).close()
        except (OSError, ValueError) as exc:
            raise ConnectionError(f"nothing answers at {address} ({exc}); give the head node's address, host:port") from None
    ray.init(address=address, namespace="dockyard", log_to_driver=False, configure_logging=False)


def instance_family(instance_type: str) -> str | None:
    """``ml.m5.large`` → ``ml.m5``: the custom resource that pins a family to nodes."""
    match = _FAMILY.fullmatch(instance_type)
    return match[1] if match else None


def bundle_for(instance_type: str, cluster: Mapping[str, float]) -> dict[str, float]:
    """The placement group bundle of one instance: its CPUs and memory, and a unit of its family's
    resource if any node of ``cluster`` (resource name → total) offers it."""
    size = resources_for(instance_type)
    bundle = {"CPU": float(size.vcpus), "memory": float(size.memory_bytes)} if size else dict(_UNSIZED)
    family = instance_family(instance_type)
    if family is not None and family in cluster:
        bundle[family] = 1.0
    return bundle


def describe(bundle: Mapping[str, float]) -> str:
    parts = [f"{bundle['CPU']:g} CPUs"]
    if "memory" in bundle:
        parts.append(f"{bundle['memory'] / 1024**3:g} GiB of memory")
    parts += [f"resource {name}" for name in bundle if name not in ("CPU", "memory")]
    return ", ".join(parts)


class RayRuntime:
    name = "ray"

    def __init__(self, config: NodeConfig, capacity_timeout: float) -> None:
        self._config = config
        self._capacity_timeout = capacity_timeout
        self._host = ray.remote(InstanceHost)
        # No CPU: it must run on a node whose CPUs the instances hold.
        self._reaper = ray.remote(num_cpus=0)(reap) if config.containers == "docker" else None
        # The instances this server runs or is starting: what a sweep for leftovers spares.
        self._live: set[str] = set()
        self._watches: set[asyncio.Task[None]] = set()
        # Told when an instance is lost (a container exited, the actor or its node died).
        self.on_exit: ExitListener = ignore_exit

    async def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        bundle = bundle_for(spec.instance_type, await asyncio.to_thread(ray.cluster_resources))
        self._live.add(spec.instance_id)
        try:
            group = await self._place(spec, bundle)
        except BaseException:
            self._live.discard(spec.instance_id)
            raise
        actor: Any = None
        try:
            actor = self._host.options(
                num_cpus=bundle["CPU"], memory=bundle.get("memory"),
                resources={k: v for k, v in bundle.items() if k not in ("CPU", "memory")},
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0),
                max_restarts=0, name=spec.instance_id,
            ).remote(self._config)
            try:
                placed: Placed | str = await actor.start.remote(spec)
            except ray.exceptions.RayError as exc:
                placed = f"The Ray node running instance {spec.instance_id} was lost while it started: {exc}"
            if isinstance(placed, str):
                raise InstanceStartError(placed)
        except BaseException:
            await asyncio.shield(self._release(spec.instance_id, actor, group, None))
            raise
        containers = tuple(RunningContainer(c.hostname, placed.urls[c.hostname], spec.log_dir / f"{c.hostname}.log")
                           for c in spec.containers)
        instance = RunningInstance(spec, containers, extra={"actor": actor, "group": group, "node_id": placed.node_id,
                                                            "dead": []},
                                   node=f"{placed.node_address} ({placed.node_id[:8]})")
        watch = asyncio.ensure_future(self._watch(instance))
        instance.extra["watch"] = watch
        self._watches.add(watch)
        watch.add_done_callback(self._watches.discard)
        log.info("instance %s runs on Ray node %s", spec.instance_id, instance.node)
        return instance

    async def _place(self, spec: InstanceSpec, bundle: Mapping[str, float]) -> PlacementGroup:
        """A placement group holding ``bundle`` that Ray reserved on a node; InstanceStartError for
        lack of capacity once ``capacity_timeout`` has passed."""
        group = placement_group([bundle], strategy="STRICT_PACK", name=spec.instance_id)
        ready = False
        try:
            # The GCS answers when the group is placed (no task, no worker process, unlike ready()).
            ready = await asyncio.to_thread(group.wait, self._capacity_timeout)
        finally:
            if not ready:
                await asyncio.shield(asyncio.to_thread(remove_placement_group, group))
        if not ready:
            raise InstanceStartError(
                f"{INSUFFICIENT_CAPACITY} (No node of the Ray cluster had {describe(bundle)} free for an instance of "
                f"type {spec.instance_type} within {self._capacity_timeout:g} s.)"
            )
        return group

    async def _watch(self, instance: RunningInstance) -> None:
        try:
            dead = await instance.extra["actor"].watch.remote()
            event = InstanceExit(instance, tuple(dead), f"exited on Ray node {instance.node}")
        except ray.exceptions.RayError as exc:
            # The actor died: its node was lost (or its process killed); so are its process
            # containers. Docker ones may live on: the stop of the instance removes them.
            dead = [c.hostname for c in instance.containers]
            event = InstanceExit(instance, tuple(dead), f"went with its Ray actor on node {instance.node} "
                                 f"({type(exc).__name__})", host_lost=True)
            # At once: Ray would re-place the lost node's groups on the nodes left, taking the room
            # the replacement needs (which the reconciler starts before it stops the lost instance).
            try:
                await asyncio.to_thread(remove_placement_group, instance.extra["group"])
                instance.extra["group"] = None
            except Exception as removal:  # the GCS did not answer: the stop of the instance tries again
                log.warning("instance %s: could not remove its placement group yet: %s", instance.spec.instance_id,
                            removal)
        instance.extra["dead"] = dead
        self.on_exit(event)

    async def _release(self, instance_id: str, actor: Any, group: PlacementGroup | None, node_id: str | None) -> None:
        """Stop the actor's containers, end the actor, give the group's resources back. When the
        actor could not stop them, its docker containers are removed on its node (on every node
        when it died before saying where it ran)."""
        stopped = actor is None
        if actor is not None:
            try:
                await asyncio.wait_for(_wait(actor.stop.remote()), self._config.stop_grace + _CALL_MARGIN)
                stopped = True
            except (ray.exceptions.RayError, asyncio.TimeoutError):
                pass  # dead already, or stuck: killing the actor kills its process containers too
            await asyncio.to_thread(ray.kill, actor)
        if group is not None:
            await asyncio.to_thread(remove_placement_group, group)
        if not stopped:
            await self._reap([node_id] if node_id else None, instance=instance_id)
        self._live.discard(instance_id)

    async def _reap(self, nodes: list[str] | None, spare: Collection[str] = (), instance: str | None = None) -> None:
        """Run ``reap`` on each of ``nodes`` (None: every live node; docker containers only),
        waiting a bounded time."""
        if self._reaper is None:
            return
        if nodes is None:
            nodes = [n["NodeID"] for n in await asyncio.to_thread(ray.nodes) if n["Alive"]]
        refs = [self._reaper.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                .remote(self._config.owner, spare, instance) for node in nodes]
        results = await asyncio.gather(*(asyncio.wait_for(_wait(ref), _REAP_TIMEOUT) for ref in refs),
                                       return_exceptions=True)
        for node, result in zip(nodes, results):
            if isinstance(result, BaseException):  # the node is gone, or its engine did not answer in time
                log.warning("could not remove this server's leftover containers on Ray node %s: %s", node[:8],
                            type(result).__name__)
            elif result:
                log.info("removed the containers of instance(s) %s left on Ray node %s", ", ".join(result), node[:8])

    async def stop_instance(self, instance: RunningInstance) -> None:
        watch = instance.extra.get("watch")
        if watch is not None:
            watch.cancel()
        await self._release(instance.spec.instance_id, instance.extra["actor"], instance.extra["group"],
                            instance.extra["node_id"])

    def dead_containers(self, instance: RunningInstance) -> list[str]:
        return list(instance.extra.get("dead", ()))

    async def stats(self, instance: RunningInstance) -> list[ContainerStats]:
        stats = await self._ask(instance, "stats")
        return stats if stats is not None else [ContainerStats(c.hostname, None, None) for c in instance.containers]

    async def resident_memory(self, instance: RunningInstance) -> int | None:
        memory: int | None = await self._ask(instance, "resident_memory")
        return memory

    async def _ask(self, instance: RunningInstance, method: str) -> Any:
        """What the instance's actor answers ``method``; None when it is gone or does not answer."""
        if instance.extra.get("dead"):
            return None
        try:
            return await asyncio.wait_for(_wait(getattr(instance.extra["actor"], method).remote()), _CALL_MARGIN)
        except (ray.exceptions.RayError, asyncio.TimeoutError):
            return None

    async def adopt(self) -> list[RunningInstance]:
        # Nothing to adopt: an earlier server's actors and placement groups ended with its Ray job.
        return []

    async def remove_orphans(self) -> None:
        # The docker containers of that earlier server's actors did not.
        await self._reap(None, spare=set(self._live))

    async def close(self) -> None:
        for watch in list(self._watches):
            watch.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        # Every instance is stopped: whatever still carries our label is left over, on any node.
        await self._reap(None)
        await asyncio.to_thread(ray.shutdown)


async def _wait(ref: Any) -> Any:
    """An ObjectRef's value, awaited (wait_for needs a coroutine)."""
    return await ref

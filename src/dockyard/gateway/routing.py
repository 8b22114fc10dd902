"""The routing table: an immutable snapshot of where each endpoint's traffic can go.

The reconciler hands over what runs (``VariantDeployment``: addresses, containers, mode,
weights) whenever instances change; ``RouteBuilder`` turns that into routes with their metric
children bound and swaps a new table in with one assignment. The gateway only ever reads the
current table, never the database.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from dockyard.gateway.metrics import ContainerMetrics, GatewayMetrics
from dockyard.gateway.multimodel import MultiModelRoute


@dataclass(frozen=True)
class ContainerRoute:
    hostname: str
    url: str
    metrics: ContainerMetrics
    # The url's host and port, split once here rather than on every request.
    host: str = field(init=False, compare=False)
    port: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        object.__setattr__(self, "host", parts.hostname or "127.0.0.1")
        object.__setattr__(self, "port", parts.port or 80)


@dataclass(frozen=True)
class InstanceRoute:
    instance_id: str
    containers: tuple[ContainerRoute, ...]

    def container(self, hostname: str) -> ContainerRoute | None:
        return next((c for c in self.containers if c.hostname == hostname), None)


@dataclass(frozen=True)
class VariantTraffic:
    """How a variant takes traffic: its weight, and its containers' mode and hostnames."""

    name: str
    weight: float
    # "Single" (one container), "Serial" (pipeline) or "Direct" (by TargetContainerHostname).
    mode: str
    hostnames: tuple[str, ...]


@dataclass(frozen=True)
class VariantRoute(VariantTraffic):
    instances: tuple[InstanceRoute, ...]
    # A multi-model variant: where its models come from and where each instance unpacks them.
    multi_model: MultiModelRoute | None = None
    # A serverless variant's MaxConcurrency (None: instance-based; no cap, no cold starts).
    max_concurrency: int | None = None
    _turn: itertools.count[int] = field(default_factory=itertools.count, compare=False)

    def next_instance(self) -> InstanceRoute | None:
        """Round-robin over the variant's ready instances."""
        if not self.instances:
            return None
        return self.instances[next(self._turn) % len(self.instances)]

    def ranked(self, key: str) -> list[InstanceRoute]:
        """The instances in ``key``'s order of preference (rendezvous hashing): a key keeps its
        instance while that one is routed, and only the keys of an instance that goes move."""
        return sorted(self.instances, key=lambda i: _score(key, i.instance_id), reverse=True)


def _score(key: str, instance_id: str) -> bytes:
    return hashlib.blake2b(f"{key}\0{instance_id}".encode(), digest_size=8).digest()


@dataclass(frozen=True)
class EndpointRoute:
    name: str
    # The endpoint's status as the control plane last set it: only InService takes traffic.
    status: str
    variants: tuple[VariantRoute, ...] = ()
    log_stream_arn: str = ""
    # Instances this route withdraws because they died: the gateway ends what is in flight to them.
    lost: frozenset[str] = frozenset()
    _cumulative: tuple[float, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", tuple(itertools.accumulate(v.weight for v in self.variants)))

    def variant(self, name: str) -> VariantRoute | None:
        return next((v for v in self.variants if v.name == name), None)

    def choose_variant(self) -> VariantRoute | None:
        """A variant at random in proportion to its weight (SageMaker's traffic distribution)."""
        if not self.variants or self._cumulative[-1] <= 0:
            return None
        point = random.random() * self._cumulative[-1]
        return self.variants[bisect.bisect_right(self._cumulative, point)]


RoutingTable = Mapping[str, EndpointRoute]


@dataclass(frozen=True)
class VariantDeployment(VariantTraffic):
    """What the control plane hands the gateway for one variant."""

    desired_instances: int
    # The ready instances in order: instance id → container hostname → URL.
    instances: Mapping[str, Mapping[str, str]]
    multi_model: MultiModelRoute | None = None
    # A serverless variant's MaxConcurrency (None: instance-based).
    max_concurrency: int | None = None


class RouteBuilder:
    """Builds each endpoint's route from its deployment, publishes it with ``publish``, and keeps
    the metric series (per container, and ready/desired per variant) of what is routed."""

    def __init__(self, metrics: GatewayMetrics, publish: Callable[[EndpointRoute | None, str], None]) -> None:
        self._metrics = metrics
        self._publish = publish
        # By lower-cased name: the endpoint's name, status and variants as last published.
        self._published: dict[str, tuple[str, str, tuple[VariantDeployment, ...]]] = {}
        self._draining = False

    def publish(
        self, endpoint: str, status: str | None, variants: Sequence[VariantDeployment] = (), lost: Iterable[str] = ()
    ) -> None:
        """Route ``endpoint`` (``status`` as the control plane has it) to ``variants``' ready
        instances; a ``status`` of None removes the endpoint from the table. ``lost``: the ids of
        instances withdrawn because they died."""
        key = endpoint.lower()
        _, _, before = self._published.pop(key, ("", "", ()))
        now = tuple(variants) if status is not None else ()
        if self._draining:
            now = tuple(replace(v, instances={}) for v in now)
        if status is None:
            self._publish(None, endpoint)
        else:
            self._published[key] = (endpoint, status, now)
            self._publish(EndpointRoute(endpoint, status, tuple(self._variant(endpoint, v) for v in now),
                                        lost=frozenset(lost)), endpoint)
        for v in now:
            self._metrics.set_instances(endpoint, v.name, len(v.instances), v.desired_instances)
        # Series of what is no longer routed go, so /metrics does not report the dead.
        names = {v.name for v in now}
        kept = {(v.name, h) for v in now for h in v.hostnames}
        for v in before:
            if v.name not in names:
                self._metrics.forget_variant(endpoint, v.name)
            for hostname in v.hostnames:
                if (v.name, hostname) not in kept:
                    self._metrics.forget(endpoint, v.name, hostname)

    def withdraw(self, endpoint: str, instance_id: str, lost: bool) -> None:
        """Take one instance out of ``endpoint``'s route at once (it died), ahead of the reconciler's
        next publish; ``lost``: its host is gone too, so what is in flight there is ended."""
        published = self._published.get(endpoint.lower())
        if published is None:
            return
        name, status, variants = published
        kept = tuple(replace(v, instances={i: urls for i, urls in v.instances.items() if i != instance_id})
                     for v in variants)
        if kept != variants:
            self.publish(name, status, kept, lost=[instance_id] if lost else ())

    def drain(self) -> None:
        """Take every instance out of rotation for good (the server is stopping): invocations
        get 503; those in flight keep the routes they hold."""
        self._draining = True
        for endpoint, status, variants in list(self._published.values()):
            self.publish(endpoint, status, variants)

    def _variant(self, endpoint: str, v: VariantDeployment) -> VariantRoute:
        metrics = {h: self._metrics.for_container(endpoint, v.name, h) for h in v.hostnames}
        instances = tuple(
            InstanceRoute(instance_id, tuple(ContainerRoute(h, url, metrics[h]) for h, url in urls.items()))
            for instance_id, urls in v.instances.items()
        )
        return VariantRoute(v.name, v.weight, v.mode, v.hostnames, instances, multi_model=v.multi_model,
                            max_concurrency=v.max_concurrency)

    def readiness(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per endpoint (by its name) and variant: ready and desired instance counts."""
        return {
            name: {v.name: {"ready": len(v.instances), "desired": v.desired_instances} for v in variants}
            for name, _, variants in self._published.values()
        }

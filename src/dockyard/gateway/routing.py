"""The routing table: an immutable snapshot of where each endpoint's traffic can go.

The reconciler builds a new table whenever instances change and swaps it in with one
assignment; the gateway only ever reads the current one, never the database.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from dockyard.gateway.metrics import ContainerMetrics


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
class VariantRoute:
    name: str
    weight: float
    # "Single" (one container), "Serial" (pipeline) or "Direct" (by TargetContainerHostname).
    mode: str
    hostnames: tuple[str, ...]
    instances: tuple[InstanceRoute, ...]
    _turn: "itertools.count[int]" = field(default_factory=itertools.count, compare=False)

    def next_instance(self) -> InstanceRoute | None:
        """Round-robin over the variant's ready instances."""
        if not self.instances:
            return None
        return self.instances[next(self._turn) % len(self.instances)]


@dataclass(frozen=True)
class EndpointRoute:
    name: str
    # The endpoint's status as the control plane last set it: only InService takes traffic.
    status: str
    variants: tuple[VariantRoute, ...] = ()
    log_stream_arn: str = ""
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

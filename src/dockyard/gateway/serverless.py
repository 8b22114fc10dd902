"""Serverless variants on the invocation path: the MaxConcurrency cap, cold starts, and how long
each variant has been idle (which the reconciler reads to scale it to zero). In memory only.

A serverless variant runs one instance, or none while scaled to zero. A request beyond
``MaxConcurrency`` in flight is refused with ``ThrottlingException``; a request that finds no
instance asks the reconciler for one (``wake``, an in-memory call — never the database) and waits
for the routing table to show it ready, for at most the invocation timeout, then answers
``ServiceUnavailable``. The first such request of a start counts a cold start; its duration runs
from that request to the instance being routed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from dockyard import errors
from dockyard.doorbell import rung
from dockyard.gateway.routing import EndpointRoute, VariantRoute

# Cold starts take from a fraction of a second (a small scikit-learn model) to minutes.
_COLD_START_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_LABELS = ("endpoint", "variant")


@dataclass
class _Variant:
    in_flight: int = 0
    # Monotonic time of the last request's end, or of the instance becoming ready.
    last_used: float = 0.0
    warm: bool = False
    # When the pending cold start was asked for (None: none pending).
    cold_since: float | None = None


class ServerlessMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cold_starts = Counter(
            "dockyard_serverless_cold_starts", "Requests that found a serverless variant scaled to zero.",
            _LABELS, registry=registry,
        )
        self.cold_start_seconds = Histogram(
            "dockyard_serverless_cold_start_seconds", "From the request that found no instance to one ready.",
            _LABELS, buckets=_COLD_START_BUCKETS, registry=registry,
        )
        self.throttled = Counter(
            "dockyard_serverless_throttled", "Requests refused beyond a serverless variant's MaxConcurrency.",
            _LABELS, registry=registry,
        )

    def summary(self, endpoint: str) -> dict[str, dict[str, float]]:
        """Per variant of ``endpoint``: cold starts, their total seconds, throttled requests."""
        names = {"dockyard_serverless_cold_starts_total": "cold_starts",
                 "dockyard_serverless_cold_start_seconds_sum": "cold_start_seconds",
                 "dockyard_serverless_throttled_total": "throttled"}
        out: dict[str, dict[str, float]] = {}
        for metric in (self.cold_starts, self.cold_start_seconds, self.throttled):
            for family in metric.collect():
                for sample in family.samples:
                    if sample.labels.get("endpoint") == endpoint and sample.name in names:
                        row = out.setdefault(sample.labels["variant"], dict.fromkeys(names.values(), 0.0))
                        row[names[sample.name]] = sample.value
        return out

    def forget(self, endpoint: str, variant: str) -> None:
        for metric in (self.cold_starts, self.cold_start_seconds, self.throttled):
            try:
                metric.remove(endpoint, variant)
            except KeyError:
                pass


class ServerlessGate:
    def __init__(self, metrics: ServerlessMetrics, wait_limit: float) -> None:
        self.metrics = metrics
        self._wait_limit = wait_limit
        self._variants: dict[tuple[str, str], _Variant] = {}
        # Set (and replaced) whenever a route is published: cold starts waiting look again.
        self._published = asyncio.Event()
        # Asks the reconciler for an instance of (endpoint, variant); set by the composition root.
        self.wake: Callable[[str, str], None] = lambda endpoint, variant: None

    def _state(self, endpoint: str, variant: str) -> _Variant:
        return self._variants.setdefault((endpoint.lower(), variant), _Variant())

    def admit(self, endpoint: str, variant: VariantRoute) -> Callable[[], None]:
        """Take one of the variant's ``MaxConcurrency`` slots, or raise ThrottlingException; the
        slot is given back by calling what this returns (once; further calls do nothing)."""
        assert variant.max_concurrency is not None
        state = self._state(endpoint, variant.name)
        if state.in_flight >= variant.max_concurrency:
            self.metrics.throttled.labels(endpoint, variant.name).inc()
            raise errors.throttling(
                f"Variant {variant.name} of endpoint {endpoint} already has {state.in_flight} requests in flight, "
                f"its MaxConcurrency; retry with backoff."
            )
        state.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                state.in_flight -= 1
                state.last_used = time.monotonic()

        return release

    async def warm(self, endpoint: str, variant: VariantRoute, current: Callable[[], VariantRoute | None]) -> VariantRoute:
        """The variant's route with a ready instance: ``variant`` when it has one, else after a cold
        start (``current`` reads the variant from the latest routing table)."""
        if variant.instances:
            return variant
        state = self._state(endpoint, variant.name)
        if state.cold_since is None:
            state.cold_since = time.monotonic()
            self.metrics.cold_starts.labels(endpoint, variant.name).inc()
        self.wake(endpoint, variant.name)
        deadline = time.monotonic() + self._wait_limit
        while True:
            route = current()
            if route is None:
                raise errors.service_unavailable(f"Variant {variant.name} of endpoint {endpoint} is gone.")
            if route.instances:
                return route
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.service_unavailable(
                    f"Variant {variant.name} of endpoint {endpoint} could not start an instance within "
                    f"{self._wait_limit:g} s; see its logs (dockyard logs {endpoint})."
                )
            await rung(self._published, remaining)

    def published(self, name: str, route: EndpointRoute | None) -> None:
        """A route was published: note which serverless variants became warm or cold, and wake
        the requests waiting for a cold start."""
        key = name.lower()
        now = time.monotonic()
        live = {v.name: v for v in route.variants if v.max_concurrency is not None} if route else {}
        for gone in [k for k in self._variants if k[0] == key and k[1] not in live]:
            del self._variants[gone]
            self.metrics.forget(name, gone[1])
        for route_variant in live.values():
            state = self._state(key, route_variant.name)
            if route_variant.instances and not state.warm:
                state.last_used = now
                if state.cold_since is not None:
                    self.metrics.cold_start_seconds.labels(name, route_variant.name).observe(now - state.cold_since)
                    state.cold_since = None
            state.warm = bool(route_variant.instances)
        self._published.set()
        self._published = asyncio.Event()

    def idle_seconds(self, endpoint: str, variant: str) -> float | None:
        """How long the variant has had nothing in flight (None: something is, or it is cold)."""
        state = self._variants.get((endpoint.lower(), variant))
        if state is None or not state.warm or state.in_flight or state.cold_since is not None:
            return None
        return time.monotonic() - state.last_used

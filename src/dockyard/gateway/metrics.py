"""Prometheus metrics of the data plane, one registry per server (no global state).

Series are labelled by endpoint, variant and container hostname, so containers that share an
instance (and so its CPU and memory) can be compared side by side. Each route binds its
labelled children once, so the hot path only increments.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 0.5 ms to 60 s (the invocation timeout).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LABELS = ("endpoint", "variant", "container")


@dataclass(frozen=True)
class ContainerMetrics:
    invocations: Counter
    errors: Counter
    latency: Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._invocations = Counter(
            "dockyard_container_invocations", "Requests sent to a container.", _LABELS, registry=registry
        )
        self._errors = Counter(
            "dockyard_container_errors",
            "Container requests that failed (non-2xx, timeout or connection error).",
            _LABELS,
            registry=registry,
        )
        self._latency = Histogram(
            "dockyard_container_latency_seconds",
            "Time a container took to answer, headers to last byte.",
            _LABELS,
            buckets=_BUCKETS,
            registry=registry,
        )
        # Degradation made visible: an InService variant below its desired count is healing.
        self._ready = Gauge(
            "dockyard_variant_ready_instances", "Instances of a variant that take traffic.",
            ("endpoint", "variant"), registry=registry,
        )
        self._desired = Gauge(
            "dockyard_variant_desired_instances", "Instances a variant should have.",
            ("endpoint", "variant"), registry=registry,
        )

    def for_container(self, endpoint: str, variant: str, container: str) -> ContainerMetrics:
        labels = (endpoint, variant, container)
        return ContainerMetrics(
            self._invocations.labels(*labels), self._errors.labels(*labels), self._latency.labels(*labels)
        )

    def summary(self, endpoint: str) -> dict[tuple[str, str], dict[str, float]]:
        """Per (variant, container) of ``endpoint``: request and error counts, p50 and p99 latency
        estimated from the histogram buckets (as Prometheus' histogram_quantile does)."""
        out: dict[tuple[str, str], dict[str, float]] = {}
        buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for family in (*self._invocations.collect(), *self._errors.collect(), *self._latency.collect()):
            for sample in family.samples:
                labels = sample.labels
                if labels.get("endpoint") != endpoint:
                    continue
                key = (labels["variant"], labels["container"])
                row = out.setdefault(key, {"count": 0.0, "errors": 0.0})
                if sample.name == "dockyard_container_invocations_total":
                    row["count"] = sample.value
                elif sample.name == "dockyard_container_errors_total":
                    row["errors"] = sample.value
                elif sample.name == "dockyard_container_latency_seconds_bucket":
                    buckets.setdefault(key, []).append((float(labels["le"]), sample.value))
        for key, cumulative in buckets.items():
            cumulative.sort()
            out[key]["p50"] = quantile(0.5, cumulative)
            out[key]["p99"] = quantile(0.99, cumulative)
        return out

    def set_instances(self, endpoint: str, variant: str, ready: int, desired: int) -> None:
        self._ready.labels(endpoint, variant).set(ready)
        self._desired.labels(endpoint, variant).set(desired)

    def forget(self, endpoint: str, variant: str, container: str) -> None:
        _remove((self._invocations, self._errors, self._latency), (endpoint, variant, container))

    def forget_variant(self, endpoint: str, variant: str) -> None:
        _remove((self._ready, self._desired), (endpoint, variant))


def _remove(metrics: tuple[Counter | Gauge | Histogram, ...], labels: tuple[str, ...]) -> None:
    for metric in metrics:
        try:
            metric.remove(*labels)
        except KeyError:
            pass


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float:
    """Linear interpolation inside the bucket that holds the q-th observation."""
    total = cumulative[-1][1]
    if total == 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in cumulative:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


class RequestMetrics:
    """InvokeEndpoint requests by endpoint, variant and the HTTP status answered, counted once per
    request whatever became of it (503 while no instance is ready and 424 included). Only known
    endpoints are counted: a label per name a client made up would grow without bound."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "dockyard_invocations", "InvokeEndpoint requests by the HTTP status answered.",
            ("endpoint", "variant", "status"), registry=registry,
        )
        # Per endpoint (lower case), its series by (endpoint, variant, status): looked up here
        # rather than through ``labels()`` on every invocation.
        self._seen: dict[str, dict[tuple[str, str, int], Counter]] = {}
        # (endpoint lower-cased, variant) → requests: what the autoscaler reads (SageMaker's
        # Invocations), a plain dict so that reading it costs nothing on either side.
        self._counts: dict[tuple[str, str], int] = {}

    def observe(self, endpoint: str, variant: str, status: int) -> None:
        lower = endpoint.lower()
        series = self._seen.get(lower)
        if series is None:
            series = self._seen[lower] = {}
        counter = series.get((endpoint, variant, status))
        if counter is None:
            counter = series[(endpoint, variant, status)] = self._requests.labels(endpoint, variant, str(status))
        counter.inc()
        key = (lower, variant)
        self._counts[key] = self._counts.get(key, 0) + 1

    def count(self, endpoint: str, variant: str) -> int:
        """InvokeEndpoint requests routed to ``variant`` of ``endpoint`` so far."""
        return self._counts.get((endpoint.lower(), variant), 0)

    def forget(self, endpoint: str) -> None:
        """Drop the series of an endpoint that is gone."""
        for name, variant, status in self._seen.pop(endpoint.lower(), {}):
            self._requests.remove(name, variant, str(status))
            self._counts.pop((endpoint.lower(), variant), None)

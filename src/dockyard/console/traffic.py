"""Live traffic per container, read from the gateway's Prometheus registry.

The registry holds totals since the server started. The console's charts want what happened in
the last second, so two readings are subtracted: invocations and errors per second, and p50/p99
latency estimated from the histogram buckets that filled in between (the way Prometheus'
``histogram_quantile(rate(...))`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from dockyard.gateway.metrics import quantile

# (endpoint, variant, container hostname), as the gateway labels its series.
Key = tuple[str, str, str]

_INVOCATIONS = "dockyard_container_invocations_total"
_ERRORS = "dockyard_container_errors_total"
_BUCKET = "dockyard_container_latency_seconds_bucket"


@dataclass
class Reading:
    """One container's totals at one moment."""

    invocations: float = 0.0
    errors: float = 0.0
    # Cumulative histogram: upper bound → observations at or below it.
    buckets: dict[float, float] = field(default_factory=dict)


def read(registry: CollectorRegistry) -> dict[Key, Reading]:
    """Every container's totals now."""
    out: dict[Key, Reading] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name not in (_INVOCATIONS, _ERRORS, _BUCKET):
                continue
            labels = sample.labels
            reading = out.setdefault((labels["endpoint"], labels["variant"], labels["container"]), Reading())
            if sample.name == _INVOCATIONS:
                reading.invocations = sample.value
            elif sample.name == _ERRORS:
                reading.errors = sample.value
            else:
                reading.buckets[float(labels["le"])] = sample.value
    return out


def window(before: Reading | None, now: Reading, seconds: float) -> dict[str, Any]:
    """Rates and latency percentiles (ms) between two readings; percentiles are None when no
    request finished in the window. With no earlier reading nothing can be said yet."""
    if before is None or seconds <= 0:
        return {"rps": None, "errorsPerSecond": None, "p50": None, "p99": None}
    if now.invocations < before.invocations:
        before = Reading()  # the series was removed and made anew (the endpoint was updated)
    cumulative = sorted((le, count - before.buckets.get(le, 0.0)) for le, count in now.buckets.items())
    finished = cumulative[-1][1] if cumulative else 0.0
    return {
        "rps": max(now.invocations - before.invocations, 0.0) / seconds,
        "errorsPerSecond": max(now.errors - before.errors, 0.0) / seconds,
        "p50": quantile(0.5, cumulative) * 1000 if finished > 0 else None,
        "p99": quantile(0.99, cumulative) * 1000 if finished > 0 else None,
    }

"""SageMaker's asynchronous inference metrics as Prometheus gauges per endpoint, read from the
queue's memory when /metrics is scraped (nothing is kept up to date on the request path)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dockyard.asyncinference.queue import AsyncInference

_GAUGES = {
    "ApproximateBacklogSize": ("dockyard_async_backlog_size", "Requests queued or running"),
    "ApproximateBacklogSizePerInstance": ("dockyard_async_backlog_size_per_instance",
                                          "Requests queued or running per ready instance"),
    "ApproximateAgeOfOldestRequest": ("dockyard_async_age_of_oldest_request_seconds",
                                      "Age of the oldest request queued or running"),
    "HasBacklogWithoutCapacity": ("dockyard_async_has_backlog_without_capacity",
                                  "1 when requests wait and no instance is ready"),
}


class BacklogCollector(Collector):
    def __init__(self, queue: AsyncInference) -> None:
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = self._queue.backlog()
        for key, (name, text) in _GAUGES.items():
            gauge = GaugeMetricFamily(name, f"{text} (SageMaker's {key})", labels=["endpoint"])
            for endpoint, values in sorted(backlog.items()):
                gauge.add_metric([endpoint], values[key])
            yield gauge


def register(registry: CollectorRegistry, queue: AsyncInference) -> None:
    registry.register(BacklogCollector(queue))

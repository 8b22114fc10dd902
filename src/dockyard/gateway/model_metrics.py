"""Prometheus series of multi-model endpoints: per model (invocations, errors, latency) and
SageMaker's multi-model metrics — ModelLoadingWaitTime, ModelDownloadingTime, ModelLoadingTime,
ModelUnloadingTime, ModelCacheHit and LoadedModelCount — by endpoint."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From 1 ms (a warm hit) to a minute (a large download).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ModelMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        per_model = ("endpoint", "model")
        self.invocations = Counter("dockyard_model_invocations", "Invocations of one model of a multi-model "
                                   "endpoint.", per_model, registry=registry)
        self.errors = Counter("dockyard_model_errors", "Failed invocations of one model of a multi-model "
                              "endpoint.", per_model, registry=registry)
        self.latency = Histogram("dockyard_model_latency_seconds", "Time one model took to answer (its load "
                                 "included).", per_model, buckets=_BUCKETS, registry=registry)

        def timing(name: str, what: str) -> Histogram:
            return Histogram(name, what, ("endpoint",), buckets=_BUCKETS, registry=registry)

        self.loading_wait = timing("dockyard_model_loading_wait_seconds",
                                   "ModelLoadingWaitTime: how long an invocation waited for its model.")
        self.downloading = timing("dockyard_model_downloading_seconds",
                                  "ModelDownloadingTime: fetching and unpacking a model.")
        self.loading = timing("dockyard_model_loading_seconds",
                              "ModelLoadingTime: the container loading a model (POST /models).")
        self.unloading = timing("dockyard_model_unloading_seconds",
                                "ModelUnloadingTime: the container unloading a model (DELETE /models/{name}).")
        self.cache = Counter("dockyard_model_cache", "ModelCacheHit: invocations whose model was loaded "
                             "(result=hit) or not (result=miss).", ("endpoint", "result"), registry=registry)
        self.loaded = Gauge("dockyard_loaded_models", "LoadedModelCount: models loaded in an instance's "
                            "container.", ("endpoint", "instance"), registry=registry)

"""The composition root: builds every layer from one Settings object and serves them on one
port — the control plane (``POST /`` with ``X-Amz-Target``), the runtime API
(``/endpoints/{name}/invocations``), ``/metrics`` and dockyard's own ``/_dockyard/*`` routes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from dockyard.api import admin, control_plane, runtime_api
from dockyard.api.errors import control_plane_errors, runtime_errors
from dockyard.api.validation import sagemaker_validator
from dockyard.artifacts.policy import AccessPolicy
from dockyard.artifacts.store import ArtifactStore
from dockyard.control.context import ControlContext
from dockyard.control.plane import operations
from dockyard.control.provision import Provisioner
from dockyard.control.reconciler import Reconciler
from dockyard.control.store import Store
from dockyard.gateway.metrics import GatewayMetrics
from dockyard.gateway.proxy import Gateway
from dockyard.runtime.base import ContainerStats, Runtime
from dockyard.settings import Settings

log = logging.getLogger(__name__)


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "process":
        from dockyard.runtime.process import ProcessRuntime

        return ProcessRuntime(owner=str(settings.state_dir.resolve()), stop_grace=settings.stop_grace,
                              layers_dir=settings.state_dir / "layers")
    if settings.runtime == "docker":
        from dockyard.runtime.docker_engine import EngineUnavailable, connect

        try:
            client = connect()  # first: it says what to do when the docker SDK is not installed
        except EngineUnavailable as exc:
            raise SystemExit(f"dockyard serve --runtime docker: {exc}") from None
        from dockyard.runtime.docker import DockerRuntime

        return DockerRuntime(client, owner=str(settings.state_dir.resolve()), stop_grace=settings.stop_grace,
                             registry=settings.registry, base_image=settings.base_image)
    raise ValueError(f"unknown runtime {settings.runtime!r}; choose 'process' or 'docker'")


def build_app(settings: Settings, runtime: Runtime | None = None) -> web.Application:
    """The whole server as one aiohttp app; ``runtime`` defaults to the one ``settings`` names
    (tests pass an in-process fake)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.state_dir / "dockyard.db")
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    gateway = Gateway(settings.account_id, settings.region, settings.invocation_timeout)
    if runtime is None:
        runtime = make_runtime(settings)
    provisioner = Provisioner(
        settings.state_dir, ArtifactStore(settings.state_dir / "cache", settings.region, AccessPolicy.from_settings(settings)), settings.startup_timeout
    )
    reconciler = Reconciler(store, runtime, provisioner, gateway, metrics, settings.health_interval)
    gateway.on_refused = reconciler.poke  # an instance refused a connection: look at it now
    ops = operations(ControlContext(store, settings, reconciler.poke))

    def log_files(endpoint: str) -> list[tuple[str, str, Path]]:
        root = provisioner.log_dir(endpoint)
        return [(p.parent.name, p.stem, p) for p in sorted(root.glob("*/*.log"), key=lambda p: p.stat().st_mtime)]

    async def stats(endpoint: str) -> list[tuple[str, str, ContainerStats]]:
        rows = []
        for instance in reconciler.running(endpoint):
            for s in await runtime.stats(instance):
                rows.append((instance.spec.variant, instance.spec.instance_id, s))
        return rows

    app = web.Application(middlewares=[control_plane_errors, runtime_errors])
    app.add_routes(admin.routes(registry, metrics.summary, log_files, stats, lambda name: store.get_endpoint(name) is not None))
    app.add_routes(runtime_api.routes(gateway, settings.max_payload_bytes))
    app.router.add_post("/", control_plane.handler(ops, sagemaker_validator()))

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(reconciler.run(), name="reconciler")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await reconciler.shutdown()
        await provisioner.close()
        await runtime.close()
        await gateway.close()
        store.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop (a dependency wherever it has wheels): its sockets cost the gateway
    less CPU per invocation (docs/benchmarks.md). Without it, asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM; every container it started is stopped on the way out."""
    web.run_app(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=lambda _: log.info("dockyard listening on http://%s:%d", settings.host, settings.port),
        shutdown_timeout=5,
        loop=event_loop(),
    )

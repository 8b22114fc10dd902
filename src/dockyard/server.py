"""The composition root: builds every layer from one Settings object and serves them on one
port — the control plane (``POST /`` with ``X-Amz-Target``), the runtime API
(``/endpoints/{name}/invocations``), ``/metrics`` and dockyard's own ``/_dockyard/*`` routes."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from dockyard import console
from dockyard.api import (
    admin,
    async_invocations,
    auth,
    connections,
    control_plane,
    response_stream,
    runtime_api,
)
from dockyard.api.errors import control_plane_errors, runtime_errors
from dockyard.api.validation import autoscaling_validator, sagemaker_validator
from dockyard.artifacts.policy import AccessPolicy, allowed_roots
from dockyard.artifacts.store import ArtifactStore
from dockyard.asyncinference import metrics as async_metrics
from dockyard.asyncinference.notify import Notifier
from dockyard.asyncinference.queue import AsyncInference
from dockyard.asyncinference.storage import Storage
from dockyard.capture.capture import DataCapture, observer
from dockyard.control.autoscaling import Autoscaler
from dockyard.control.context import ControlContext
from dockyard.control.plane import autoscaling_operations, endpoint_ops, operations
from dockyard.control.provision import Provisioner
from dockyard.control.reconciler import Reconciler
from dockyard.control.scaling import IdleScaler
from dockyard.control.store import Store
from dockyard.gateway.metrics import GatewayMetrics, RequestMetrics
from dockyard.gateway.model_metrics import ModelMetrics
from dockyard.gateway.multimodel import MultiModels
from dockyard.gateway.proxy import Gateway
from dockyard.gateway.routing import RouteBuilder
from dockyard.gateway.serverless import ServerlessMetrics
from dockyard.runtime import privileges
from dockyard.runtime.base import ContainerStats, Runtime
from dockyard.runtime.privileges import ContainerUser
from dockyard.runtime.process import ProcessRuntime
from dockyard.settings import Settings
from dockyard.state_lock import StateDirInUse, lock_state_dir

log = logging.getLogger(__name__)
DATABASE = "dockyard.db"  # in the state directory


def container_user(settings: Settings) -> ContainerUser | None:
    """Process runtime: who its containers run as (``runtime/privileges.py``)."""
    if settings.runtime != "process":
        return None
    try:
        user = privileges.container_user(settings.container_user)
    except ValueError as exc:
        raise SystemExit(f"dockyard serve: {exc}") from None
    blocked = privileges.blocks_managed_images(user) if user is not None else None
    if user is not None and blocked is not None:
        # Said at start, not only in each endpoint's FailureReason: the first deployment would fail.
        log.warning(
            "containers run as user %s (DOCKYARD_CONTAINER_USER), who cannot read %s: endpoints on managed "
            "images will fail to start. Install Python and dockyard where %s can read them, or set "
            "DOCKYARD_CONTAINER_USER=root to run containers as root.", user.name, blocked, user.name)
    return user


def make_runtime(settings: Settings, user: ContainerUser | None = None, scratch: Path | None = None) -> Runtime:
    if settings.runtime == "process":
        scratch = scratch or settings.state_dir
        return ProcessRuntime(owner=str(settings.state_dir.resolve()), stop_grace=settings.stop_grace,
                              layers_dir=scratch / "layers", user=user,
                              zygotes_dir=scratch / "zygotes" if settings.fork_server else None)
    if settings.runtime == "docker":
        from dockyard.runtime.docker_engine import EngineUnavailable, connect

        try:
            client = connect()  # first: it says what to do when the docker SDK is not installed
        except EngineUnavailable as exc:
            raise SystemExit(f"dockyard serve --runtime docker: {exc}") from None
        from dockyard.runtime.docker import DockerRuntime

        return DockerRuntime(client, owner=str(settings.state_dir.resolve()), stop_grace=settings.stop_grace,
                             registry=settings.registry, base_image=settings.base_image)
    if settings.runtime == "ray":
        return _ray_runtime(settings, scratch or settings.state_dir)
    raise ValueError(f"unknown runtime {settings.runtime!r}; choose 'process', 'docker' or 'ray'")


def _ray_runtime(settings: Settings, scratch: Path) -> Runtime:
    """Join the Ray cluster (docs/scale-out.md); SystemExit with one line when that cannot be done."""
    if importlib.util.find_spec("ray") is None:
        raise SystemExit("dockyard serve --runtime ray: Ray is not installed here: pip install 'dockyard[ray]'")
    from dockyard.runtime.ray import RayRuntime, connect
    from dockyard.runtime.ray_actor import NodeConfig

    try:
        connect(settings.ray_address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SystemExit(f"dockyard serve --runtime ray: cannot join the Ray cluster at {settings.ray_address}: {exc}") from None
    config = NodeConfig(
        # Unique in the cluster, which other machines' servers may share: host and state directory.
        owner=f"{socket.gethostname()}:{settings.state_dir.resolve()}", stop_grace=settings.stop_grace, containers=settings.ray_containers,
        region=settings.region, policy=AccessPolicy.from_settings(settings), cache_dir=scratch / "node-cache",
        layers_dir=scratch / "layers", container_user=settings.container_user, registry=settings.registry,
        base_image=settings.base_image,
    )
    return RayRuntime(config, settings.ray_capacity_timeout)


def build_app(settings: Settings, runtime: Runtime | None = None) -> web.Application:
    """The whole server as one aiohttp app; ``runtime`` defaults to the one ``settings`` names
    (tests pass an in-process fake)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.state_dir / DATABASE)
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    artifacts = ArtifactStore(settings.state_dir / "cache", settings.region, AccessPolicy.from_settings(settings))
    models = MultiModels(artifacts, settings.model_load_wait, ModelMetrics(registry))
    requests = RequestMetrics(registry)
    gateway = Gateway(settings.account_id, settings.region, settings.invocation_timeout, requests,
                      ServerlessMetrics(registry), models)
    user = container_user(settings) if runtime is None else None
    try:
        # Instance directories and layers: where the containers' user can reach them.
        scratch = privileges.scratch_dir(settings.state_dir, user)
    except ValueError as exc:
        raise SystemExit(f"dockyard serve: {exc}") from None
    if runtime is None:
        runtime = make_runtime(settings, user, scratch)
    provisioner = Provisioner(
        settings.state_dir,
        artifacts,
        settings.startup_timeout,
        instances_dir=scratch / "instances",
        fetch_on_node=runtime.name == "ray",
    )
    routes = RouteBuilder(metrics, gateway.publish)
    reconciler = Reconciler(store, runtime, provisioner, routes, settings.health_interval,
                            (settings.restart_backoff, settings.restart_backoff_max),
                            IdleScaler(gateway.serverless.idle_seconds, settings.serverless_idle_seconds),
                            functools.partial(gateway.in_flight.drained, timeout=settings.invocation_timeout))
    gateway.on_refused = reconciler.poke  # an instance refused a connection: look at it now
    storage = Storage(settings.region, allowed_roots(settings))
    queue = AsyncInference(store, gateway, storage, Notifier(settings.region), settings.account_id, settings.region)
    async_metrics.register(registry, queue)
    capture = DataCapture(store, storage, registry)
    gateway.serverless.wake = reconciler.wake  # a serverless variant's cold start
    if isinstance(runtime, ProcessRuntime):
        runtime.memory.on_exceeded = gateway.stopped.__setitem__  # the watchdog's reason, for the ModelError
    runtime.on_exit = reconciler.exited  # a container died, or its host: out of rotation now, then replaced

    def changed() -> None:
        # Which endpoints are asynchronous and which capture, before the operation answers.
        queue.refresh()
        capture.refresh()
        # Rung on the store's thread, where operations run: the doorbells ring on the loop.
        reconciler.call_soon(live.wake)
        reconciler.poke()

    ctx = ControlContext(store, settings, changed)

    def backlog(endpoint: str) -> float | None:
        values = queue.backlog_of(endpoint)
        return values["ApproximateBacklogSize"] if values is not None else None

    autoscaler = Autoscaler(ctx, endpoint_ops(ctx), requests.count, backlog, settings.autoscaling_period)

    def log_files(endpoint: str) -> list[tuple[str, str, Path, bool]]:
        """(instance, container, log file, whether the instance is running) of every container ever started."""
        root = provisioner.log_dir(endpoint)
        live = {i.spec.instance_id for i in reconciler.running(endpoint)}
        return [(p.parent.name, p.stem, p, p.parent.name in live)
                for p in sorted(root.glob("*/*.log"), key=lambda p: p.stat().st_mtime)]

    async def stats(endpoint: str) -> list[tuple[str, str, ContainerStats]]:
        rows = []
        for instance in reconciler.running(endpoint):
            for s in await runtime.stats(instance):
                rows.append((instance.spec.variant, instance.spec.instance_id, s))
        return rows

    async def memory_of(endpoint: str, instance_id: str) -> int | None:
        """A multi-model instance's container memory (RSS), which its models must fit beside."""
        for instance in reconciler.running(endpoint):
            if instance.spec.instance_id == instance_id:
                return await runtime.resident_memory(instance)
        return None

    models.memory_of = memory_of

    def nodes(endpoint: str) -> dict[str, str]:
        """Instance id → the node it runs on (a host name; a Ray node's address and id)."""
        return {i.spec.instance_id: i.node for i in reconciler.running(endpoint)}

    def readiness() -> dict[str, dict[str, dict[str, Any]]]:
        """Per endpoint and variant: ready and desired instances, the nodes they run on, and when
        and how its last replaced instance ended."""
        table: dict[str, dict[str, dict[str, Any]]] = {name: {v: dict(counts) for v, counts in variants.items()}
                                                       for name, variants in routes.readiness().items()}
        for name, variants in table.items():
            for variant, counts in variants.items():
                counts["nodes"] = []
                counts["last_exit"] = reconciler.last_exit(name, variant)
            for instance in reconciler.running(name):
                if instance.spec.variant in variants:
                    variants[instance.spec.variant]["nodes"].append(instance.node)
        return table

    live = console.LiveChannel(console.Sources(
        endpoints=store.list_endpoints, endpoint=store.get_endpoint, routing=lambda: gateway.table,
        instances=reconciler.running, dead_containers=runtime.dead_containers, stats=stats,
        log_files=log_files, registry=registry, runtime=runtime.name,
    ))
    app = web.Application(middlewares=[control_plane_errors, runtime_errors])  # type: ignore[list-item]  # aiohttp's own alias is narrower
    console.install(app, live)
    app.add_routes(admin.routes(registry, metrics.summary, log_files, stats, lambda name: name.lower() in gateway.table,
                                gateway.serverless.metrics.summary, models.describe, queue.backlog_of, nodes))
    app.add_routes([admin.readiness_route(readiness)])
    app[runtime_api.INVOKE] = invoke = runtime_api.handler(
        gateway, settings.max_payload_bytes, async_invocations.realtime_guard(queue), observer(capture))
    app.add_routes(runtime_api.routes(invoke))
    app.add_routes(async_invocations.routes(queue))
    app.add_routes(response_stream.routes(gateway, settings.max_payload_bytes, async_invocations.realtime_guard(queue)))
    app.router.add_post("/", control_plane.handler({
        control_plane.SAGEMAKER: control_plane.Service("SageMaker", operations(ctx), sagemaker_validator()),
        control_plane.AUTOSCALING: control_plane.Service("Application Auto Scaling", autoscaling_operations(ctx),
                                                         autoscaling_validator()),
    }))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # Runs before the port accepts requests: the gateway knows every stored endpoint.
        reconciler.start()
        autoscaler.start()
        await queue.start()
        await store.run(capture.refresh)
        capture.start()
        yield
        # By now in-flight requests have finished (or run out of shutdown_timeout); queued
        # asynchronous requests stay stored for the next start.
        await queue.shutdown()
        await capture.close()  # what is buffered is written
        await autoscaler.close()
        await reconciler.shutdown()
        await provisioner.close()
        await runtime.close()
        await gateway.close()
        store.close()

    async def drain(app: web.Application) -> None:
        # Shutdown has begun: invocations that still arrive get 503 at once; those in flight
        # keep their containers until they finish.
        routes.drain()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(drain)
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
    """Run the server until SIGINT/SIGTERM; every container it started is stopped on the way out.

    Refuses (SystemExit) a non-loopback host without credentials unless ``insecure_no_auth``."""
    keys = _credentials(settings)
    ssl_context = _tls(settings)
    try:
        # Before anything touches the state dir (the orphan sweep in particular); held until exit.
        lock = lock_state_dir(settings.state_dir, f"{'https' if ssl_context else 'http'}://{settings.host}:{settings.port}")
    except StateDirInUse as exc:
        raise SystemExit(str(exc)) from None
    with lock:
        _serve_locked(settings, keys, ssl_context)


def _serve_locked(settings: Settings, keys: dict[str, auth.Credential], ssl_context: ssl.SSLContext | None) -> None:
    _private_state_dir(settings)
    app = build_app(settings)
    max_connections = min(settings.max_connections, connections.raise_fd_limit())
    guard = connections.ConnectionGuard(max_connections, settings.header_timeout, settings.body_timeout)
    # After the error middlewares: the guard answers a client that went away before they log it
    # as a failure; the signature check comes last, so that the guard sees its body reads too.
    app.middlewares.append(guard.middleware())
    if keys:
        open_paths = auth.OPEN_PATHS | ({"/metrics"} if settings.metrics_open else set())
        # A browser cannot sign: the console has its own sign-in, which the signature check asks.
        signin = console.SignIn(keys, settings.console_session_seconds, secure=ssl_context is not None)
        app.add_routes(signin.routes())
        app.middlewares.append(auth.middleware(keys, settings.max_payload_bytes, open_paths, signin.authorizes))
    loop = event_loop()
    asyncio.set_event_loop(loop)
    connections.quiet_fd_exhaustion(loop)
    main = loop.create_task(_serve(app, settings, guard, ssl_context))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):  # SIGTERM / SIGINT (aiohttp's signal handlers)
        pass
    finally:
        main.cancel()
        loop.run_until_complete(asyncio.gather(main, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(app: web.Application, settings: Settings, guard: connections.ConnectionGuard,
                 ssl_context: ssl.SSLContext | None) -> None:
    # In-flight invocations may finish on shutdown, as long as the invocation timeout lets them.
    runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=settings.invocation_timeout)
    await runner.setup()
    assert runner.server is not None
    runtime_api.shortcut(runner.server, app)
    try:
        site = _GuardedSite(runner, settings.host, settings.port, guard, settings, ssl_context)
        await site.start()
        scheme = "https" if ssl_context else "http"
        log.info("dockyard listening on %s://%s:%d", scheme, settings.host, settings.port)
        await asyncio.Event().wait()  # until a signal ends the loop
    finally:
        await runner.cleanup()


class _GuardedSite(web.TCPSite):
    """aiohttp's TCP site, serving each connection with the guard's protocol (cap, deadlines)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: connections.ConnectionGuard,
                 settings: Settings, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self.guard, self.settings = guard, settings

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        assert self._runner.server is not None
        protocol = self.guard.protocol_factory(
            self._runner.server, access_log=None, keepalive_timeout=self.settings.keepalive_timeout
        )
        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            # a TLS handshake is part of sending the request headers
            ssl_handshake_timeout=self.settings.header_timeout if self._ssl_context else None,
        )


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _credentials(settings: Settings) -> dict[str, auth.Credential]:
    if settings.credentials is not None:
        try:
            return auth.load_credentials(settings.credentials)
        except ValueError as exc:
            raise SystemExit(f"dockyard serve: {exc}") from None
    if is_loopback(settings.host):
        return {}
    if not settings.insecure_no_auth:
        raise SystemExit(
            f"dockyard serve: refusing to serve {settings.host} without credentials: anyone who can reach it could "
            "run code on this machine. Give --credentials FILE, or --insecure-no-auth if the network is trusted."
        )
    log.warning("serving %s WITHOUT authentication (--insecure-no-auth): anyone who can reach it can run code here",
                settings.host)
    return {}


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SystemExit("dockyard serve: --tls-cert and --tls-key go together")
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"dockyard serve: cannot use TLS certificate {settings.tls_cert} / key {settings.tls_key}: {exc}") from None
    return context


def _private_state_dir(settings: Settings) -> None:
    """State dir 0700 and its database 0600 (SQLite gives its -wal/-shm files the database's mode):
    they hold every model's definition and environment."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.state_dir.chmod(0o700)
    database = settings.state_dir / DATABASE
    database.touch(mode=0o600)
    database.chmod(0o600)

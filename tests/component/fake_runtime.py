"""A ``Runtime`` whose containers are tiny aiohttp apps on free loopback ports, in-process.

Each container's behaviour comes from the ``Behaviour`` registered for its image, overridden by
``FAKE_*`` variables in the container's Environment (so one test can give two models different
behaviours): a slow start, a failing ``/ping``, a crash after N invocations, a fixed response
status, body and extra headers, a large streamed body that may be cut off part way, a
connection dropped unanswered while the process lives on. A container that exits is reported to
``on_exit`` first (unless ``push_exits`` is off: a runtime that cannot tell), then resets the
connections of the requests in flight to it, as a killed process's kernel does. By default
``/invocations`` echoes what the container received (headers, body,
its hostname and instance) as JSON, so tests assert what a container *was sent*. A multi-model
container also serves the ``/models`` API (a model is the ``name.txt`` of its directory).

The runtime keeps records for assertions: ``running`` (instance id → instance),
``started``/``stopped`` (instance ids in order), ``orphan_sweeps``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import web

from dockyard.runtime import base


@dataclass(frozen=True)
class Behaviour:
    # Seconds between "the container started" and "/ping answers 200".
    start_delay: float = 0.0
    # /ping's status; anything but 200 fails the instance start (FailureReason names it).
    ping_status: int = 200
    # After this many invocations the container exits (its port closes, dead_containers says so).
    crash_after: int | None = None
    # A fixed /invocations answer instead of the echo.
    status: int = 200
    body: str | None = None
    content_type: str = "application/json"
    # Extra response headers (FAKE_RESPONSE_HEADERS, a JSON object).
    response_headers: tuple[tuple[str, str], ...] = ()
    # Answer a streamed body of this many bytes, announced by Content-Length (FAKE_BODY_BYTES) ...
    body_bytes: int | None = None
    # ... and drop the connection after sending this many of them (FAKE_CUT_AT).
    cut_at: int | None = None
    # Multi-model containers: at most this many models loaded, then POST /models answers 507
    # (FAKE_MAX_MODELS); and how long a load takes (FAKE_LOAD_DELAY).
    max_models: int | None = None
    load_delay: float = 0.0
    # Resident memory each model adds to the container's stats from the start of its load, as a
    # real load allocates while it runs (FAKE_MODEL_MEMORY).
    model_memory: int = 0
    # Drop each /invocations connection without a byte of answer, and live on (FAKE_DROP=1).
    drop: bool = False

    def with_environment(self, env: Mapping[str, str]) -> Behaviour:
        """This behaviour with the container's ``FAKE_*`` variables applied."""
        changes = {name: convert(env[variable]) for variable, (name, convert) in _VARIABLES.items()
                   if variable in env}
        return replace(self, **changes)


def _headers(value: str) -> tuple[tuple[str, str], ...]:
    return tuple(json.loads(value).items())


# FAKE_* variable → the Behaviour field it sets and how its text converts.
_VARIABLES: dict[str, tuple[str, Callable[[str], object]]] = {
    "FAKE_START_DELAY": ("start_delay", float), "FAKE_PING_STATUS": ("ping_status", int),
    "FAKE_CRASH_AFTER": ("crash_after", int), "FAKE_STATUS": ("status", int), "FAKE_BODY": ("body", str),
    "FAKE_CONTENT_TYPE": ("content_type", str), "FAKE_RESPONSE_HEADERS": ("response_headers", _headers),
    "FAKE_BODY_BYTES": ("body_bytes", int), "FAKE_CUT_AT": ("cut_at", int), "FAKE_MAX_MODELS": ("max_models", int),
    "FAKE_LOAD_DELAY": ("load_delay", float), "FAKE_MODEL_MEMORY": ("model_memory", int),
    "FAKE_DROP": ("drop", lambda v: v == "1"),
}


@dataclass
class FakeContainer:
    """One running fake container: its aiohttp runner, its behaviour, what it has seen."""

    spec: base.ContainerSpec
    instance_id: str
    behaviour: Behaviour
    runner: web.AppRunner | None = None
    port: int = 0
    invocations: int = 0
    # Set when the container exited (crash, or killed by a test).
    exited: bool = False
    # Told when the container exits of itself (the runtime's on_exit, once the instance started).
    on_exit: Callable[[], None] = lambda: None
    received: list[dict[str, object]] = field(default_factory=list)
    # While set and not yet fired, invocations (of a model too) are held after their body was read
    # (in flight).
    hold: asyncio.Event | None = None
    # Multi-model: loaded models (name → the directory's name.txt), and every POST /models and
    # DELETE /models/{name} in order, as ("load" | "unload", name).
    models: dict[str, str] = field(default_factory=dict)
    model_calls: list[tuple[str, str]] = field(default_factory=list)
    # Models being loaded now, and the most ever in memory at once (loaded or loading).
    loading: set[str] = field(default_factory=set)
    peak_models: int = 0
    # The /invocations requests being answered now: their connections and handler tasks.
    in_flight: dict[asyncio.BaseTransport, asyncio.Task[object] | None] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ping", self._ping)
        app.router.add_post("/invocations", self._invocations)
        if self.spec.multi_model:
            app.router.add_post("/models", self._load)
            app.router.add_get("/models/{name}", self._describe)
            app.router.add_delete("/models/{name}", self._unload)
            app.router.add_post("/models/{name}/invoke", self._invoke_model)
        return app

    async def _load(self, request: web.Request) -> web.Response:
        spec = await request.json()
        name = spec["model_name"]
        self.model_calls.append(("load", name))
        if name in self.models or name in self.loading:
            return web.json_response({"message": "already loaded"}, status=409)
        if self.behaviour.max_models is not None and len(self.models) >= self.behaviour.max_models:
            return web.json_response({"message": "out of memory"}, status=507)
        self.loading.add(name)
        self.peak_models = max(self.peak_models, len(self.models) + len(self.loading))
        try:
            await asyncio.sleep(self.behaviour.load_delay)
        finally:
            self.loading.discard(name)
        self.models[name] = (Path(spec["url"]) / "name.txt").read_text()
        return web.json_response({"status": "loaded"})

    async def _describe(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.models:
            return web.json_response({"message": "not loaded"}, status=404)
        return web.json_response([{"modelName": name}])

    async def _unload(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.model_calls.append(("unload", name))
        if self.models.pop(name, None) is None:
            return web.json_response({"message": "not loaded"}, status=404)
        return web.json_response({"status": "unloaded"})

    async def _invoke_model(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.models:
            return web.json_response({"message": "not loaded"}, status=404)
        self.invocations += 1
        if self.hold is not None:
            await self.hold.wait()
        seen = {"instance": self.instance_id, "model": self.models[name], "headers": dict(request.headers)}
        return web.json_response(seen)

    async def _ping(self, _: web.Request) -> web.Response:
        return web.Response(status=self.behaviour.ping_status)

    async def _invocations(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.invocations += 1
        assert request.transport is not None
        if self.behaviour.drop:
            request.transport.abort()
            return web.Response()
        self.in_flight[request.transport] = asyncio.current_task()
        try:
            if self.hold is not None:
                await self.hold.wait()
        finally:
            self.in_flight.pop(request.transport, None)
        seen = {
            "container": self.spec.hostname,
            "instance": self.instance_id,
            "headers": dict(request.headers),
            "body": body.decode("utf-8", "replace"),
        }
        self.received.append(seen)
        b = self.behaviour
        if b.crash_after is not None and self.invocations >= b.crash_after:
            # Answer this one, then die: the next request finds the port closed.
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.exit()))
        headers = {"Content-Type": b.content_type, **dict(b.response_headers)}
        if b.body_bytes is not None:
            return await self._stream(request, headers)
        text = b.body if b.body is not None else json.dumps(seen)
        return web.Response(status=b.status, body=text.encode(), headers=headers)

    async def _stream(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        b = self.behaviour
        assert b.body_bytes is not None
        out = web.StreamResponse(status=b.status, headers=headers)
        out.content_length = b.body_bytes
        await out.prepare(request)
        send = b.body_bytes if b.cut_at is None else b.cut_at
        for offset in range(0, send, 64 * 1024):
            await out.write(b"x" * min(64 * 1024, send - offset))
        if b.cut_at is not None:
            assert request.transport is not None
            request.transport.abort()
            return out
        await out.write_eof()
        return out

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def exit(self) -> None:
        if not self.exited:
            self.exited = True
            self.on_exit()
        for transport, task in list(self.in_flight.items()):
            transport.abort()
            if task is not None:
                task.cancel()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()


class FakeRuntime:
    """The Runtime protocol over in-process fake containers (see the module docstring)."""

    name = "fake"

    def __init__(self, images: Mapping[str, Behaviour] | None = None) -> None:
        # Mutable on purpose: a test may change an image's behaviour between reconciler passes.
        self.images: dict[str, Behaviour] = dict(images or {})
        # While set and not yet fired, every start waits on it (to act while instances start).
        self.gate: asyncio.Event | None = None
        self.running: dict[str, base.RunningInstance] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.orphan_sweeps = 0
        self.leftovers: list[base.RunningInstance] = []
        self.on_exit: base.ExitListener = base.ignore_exit
        # Whether exits are reported to on_exit (off: the reconciler's periodic check finds them).
        self.push_exits = True

    def behaviour(self, container: base.ContainerSpec) -> Behaviour:
        return self.images.get(container.image, Behaviour()).with_environment(container.environment)

    async def start_instance(self, spec: base.InstanceSpec) -> base.RunningInstance:
        fakes = [FakeContainer(c, spec.instance_id, self.behaviour(c)) for c in spec.containers]
        instance = base.RunningInstance(
            spec,
            tuple(base.RunningContainer(f.spec.hostname, "", spec.log_dir / f"{f.spec.hostname}.log", f) for f in fakes),
        )
        self.started.append(spec.instance_id)
        self.running[spec.instance_id] = instance
        try:
            spec.log_dir.mkdir(parents=True, exist_ok=True)
            for fake, container in zip(fakes, instance.containers):
                await fake.start()
                container.url = f"http://127.0.0.1:{fake.port}"
                container.log_path.write_text(f"fake container {fake.spec.hostname} started\n")
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(max(f.behaviour.start_delay for f in fakes))
            for fake in fakes:
                if fake.behaviour.ping_status != 200:
                    raise base.InstanceStartError(
                        f"Container {fake.spec.hostname} for production variant {spec.variant} did not pass "
                        f"the ping health check (/ping answered {fake.behaviour.ping_status})."
                    )
        except BaseException:
            await self.stop_instance(instance)
            raise
        for fake, container in zip(fakes, instance.containers):
            fake.on_exit = functools.partial(self._exited, instance, container.hostname)
        return instance

    def _exited(self, instance: base.RunningInstance, hostname: str) -> None:
        if self.push_exits:
            self.on_exit(base.InstanceExit(instance, (hostname,), base.exit_description(-9)))

    async def stop_instance(self, instance: base.RunningInstance) -> None:
        for container in instance.containers:
            container.handle.on_exit = lambda: None  # stopped on purpose: no exit to report
        await asyncio.gather(*(c.handle.exit() for c in instance.containers))
        if self.running.pop(instance.spec.instance_id, None) is not None:
            self.stopped.append(instance.spec.instance_id)
        shutil.rmtree(instance.spec.workdir, ignore_errors=True)

    def dead_containers(self, instance: base.RunningInstance) -> list[str]:
        return [c.hostname for c in instance.containers if c.handle.exited]

    async def stats(self, instance: base.RunningInstance) -> list[base.ContainerStats]:
        return [base.ContainerStats(c.hostname, 0.0,
                                    (len(c.handle.models) + len(c.handle.loading)) * c.handle.behaviour.model_memory)
                for c in instance.containers]

    async def resident_memory(self, instance: base.RunningInstance) -> int | None:
        return sum(s.memory_bytes or 0 for s in await self.stats(instance))

    async def adopt(self) -> list[base.RunningInstance]:
        # What a killed server "left running": instances a test started on another FakeRuntime.
        for instance in self.leftovers:
            self.running[instance.spec.instance_id] = instance
        return list(self.leftovers)

    async def remove_orphans(self) -> None:
        self.orphan_sweeps += 1

    async def close(self) -> None:
        await asyncio.gather(*(self.stop_instance(i) for i in list(self.running.values())))

    # --- for tests ---------------------------------------------------------------------------

    def containers(self, endpoint: str | None = None) -> list[FakeContainer]:
        """The fake containers of running instances (of one endpoint, case-insensitively)."""
        return [
            c.handle
            for i in self.running.values()
            if endpoint is None or i.spec.endpoint.lower() == endpoint.lower()
            for c in i.containers
        ]

    async def kill(self, endpoint: str) -> FakeContainer:
        """Make the first running container of ``endpoint`` exit, as a crash would."""
        victim = next(c for c in self.containers(endpoint) if not c.exited)
        await victim.exit()
        return victim

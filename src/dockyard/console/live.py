"""The console's one live channel: Server-Sent Events at ``/_dockyard/console/events``.

One loop, running only while a browser is connected, ticks every second — and at once when the
control plane changes desired state (``wake``) or the reconciler swaps in a new routing table.
Each tick it:

- re-reads the endpoint list only when something can have changed it: the control plane rang,
  the reconciler swapped in a new routing table, or an endpoint is in a status the reconciler
  moves on by itself (Creating, Updating, Deleting). The invocation path is never involved;
- reads the gateway's Prometheus registry once for every endpoint's traffic in the last second;
- for each endpoint a page has open: its instances and their health (the reconciler's running
  instances against the routing table), CPU and memory (runtime stats, gathered in the
  background so that a slow engine never holds the tick) and new log lines.

A page subscribes with ``?endpoint=NAME`` (or none for the overview) and is sent only what
changed since its last message, as named events: ``endpoints``, ``traffic``, ``instances``,
``history``, ``point`` and ``logs``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from dockyard.console import traffic, views
from dockyard.console.logs import LogFollower
from dockyard.control.status import EndpointStatus
from dockyard.control.store import Endpoint
from dockyard.doorbell import rung
from dockyard.gateway.routing import RoutingTable
from dockyard.runtime.base import ContainerStats, RunningInstance

log = logging.getLogger(__name__)

HISTORY_POINTS = 120
# How often the loop looks whether the reconciler swapped in a new routing table.
TABLE_CHECK = 0.1
TAIL_LINES = 200
# A page this many messages behind is disconnected (its EventSource reconnects and starts afresh).
MAX_BACKLOG = 500
STILL_ALLOWED = "dockyard.console.still_allowed"
"""Request key: what let the request in may leave a callable here that says whether it still
would (a console session that can expire or sign out); the stream ends once it says no."""


@dataclass(frozen=True)
class Sources:
    """What the console reads, handed over by the composition root (server.py)."""

    endpoints: Callable[[], list[Endpoint]]
    endpoint: Callable[[str], Endpoint | None]
    routing: Callable[[], RoutingTable]
    instances: Callable[[str], list[RunningInstance]]
    dead_containers: Callable[[RunningInstance], list[str]]
    stats: Callable[[str], Awaitable[list[tuple[str, str, ContainerStats]]]]
    # (instance, container, log file, whether the instance still runs) of every container started.
    log_files: Callable[[str], list[tuple[str, str, Path, bool]]]
    registry: CollectorRegistry
    runtime: str


@dataclass(eq=False)
class Subscriber:
    # Lower-cased name of the endpoint the page shows, or None on the overview.
    endpoint: str | None
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    # Event name → the last payload sent, so that unchanged state is not sent again.
    sent: dict[str, str] = field(default_factory=dict)
    fresh: bool = True


class LiveChannel:
    def __init__(self, sources: Sources, interval: float = 1.0) -> None:
        self.sources = sources
        self._interval = interval
        self._subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._dirty = True
        self._table: RoutingTable | None = None
        self._endpoints: list[dict[str, Any]] = []
        self._readings: dict[traffic.Key, traffic.Reading] = {}
        self._sampled_at = 0.0
        self._history: dict[str, collections.deque[dict[str, Any]]] = {}
        self._stats: dict[str, dict[tuple[str, str], tuple[float | None, int | None]]] = {}
        self._stats_tasks: dict[str, asyncio.Task[None]] = {}
        self._logs = LogFollower()
        self._instances = views.InstanceViews(sources.runtime, sources.dead_containers)

    def wake(self) -> None:
        """Desired state changed: send the endpoint list again now."""
        self._dirty = True
        self._wake.set()

    def endpoint_list(self) -> list[dict[str, Any]]:
        return views.endpoint_list(self.sources.endpoints(), self.sources.routing())

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            if not self._subscribers:
                self._forget_all()
                await self._wake.wait()
            self._wake.clear()
            try:
                await self._tick()
            except Exception:  # a bug here must not stop the console for good
                log.exception("console: a live update failed")
            await self._pause()

    async def _pause(self) -> None:
        """Until the next tick: the interval, a wake-up, or a new routing table from the
        reconciler (looked at often: it is one comparison)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._interval
        while (left := deadline - loop.time()) > 0:
            if await rung(self._wake, min(left, TABLE_CHECK)) or self.sources.routing() is not self._table:
                return

    async def _tick(self) -> None:
        table = self.sources.routing()
        # An endpoint in progress is moved on by the reconciler, which does not ring: follow it.
        moving = any(EndpointStatus(e["status"]).in_progress for e in self._endpoints)
        if self._dirty or moving or table is not self._table:
            self._dirty, self._table = False, table
            self._endpoints = views.endpoint_list(self.sources.endpoints(), table)
        subscribers = list(self._subscribers)
        for sub in subscribers:
            self._send_changed(sub, "endpoints", {"endpoints": self._endpoints})
        now = time.monotonic()
        # A wake-up between seconds only refreshes the list; traffic keeps its 1 s windows.
        sampled = now - self._sampled_at >= self._interval * 0.9
        if sampled:
            self._sample(now)
        watched: dict[str, list[Subscriber]] = {}
        for sub in subscribers:
            if sub.endpoint is not None:
                watched.setdefault(sub.endpoint, []).append(sub)
        for endpoint, subs in watched.items():
            self._watch(endpoint, subs, sampled)
        self._logs.forget({path for ep in watched for _, _, path, _ in self.sources.log_files(ep)})
        self._instances.forget({i.spec.instance_id for ep in watched for i in self.sources.instances(ep)})
        for endpoint in set(self._stats) - set(watched):
            del self._stats[endpoint]
        for sub in subscribers:
            sub.fresh = False

    def _sample(self, now: float) -> None:
        """Every container's traffic in the window since the last sample."""
        readings = traffic.read(self.sources.registry)
        # A container that appears after the first sample started from zero since then; on the
        # first sample nothing is known of what came before.
        new_series = traffic.Reading() if self._sampled_at else None
        seconds = now - self._sampled_at
        self._sampled_at = now
        stamp = time.time()
        points: dict[str, dict[str, Any]] = {}
        for key, reading in readings.items():
            endpoint, variant, container = key
            row = {"variant": variant, "container": container,
                   **traffic.window(self._readings.get(key, new_series), reading, seconds)}
            cpu, memory = self._stats.get(endpoint.lower(), {}).get((variant, container), (None, None))
            row |= {"cpu": cpu, "memory": memory}
            points.setdefault(endpoint.lower(), {"t": stamp, "containers": []})["containers"].append(row)
        self._readings = readings
        for endpoint in set(self._history) - set(points):
            del self._history[endpoint]
        for endpoint, point in points.items():
            self._history.setdefault(endpoint, collections.deque(maxlen=HISTORY_POINTS)).append(point)
        totals = {name: {"rps": self._endpoint_rate(name, point)} for name, point in points.items()}
        for sub in list(self._subscribers):
            self._send(sub, "traffic", {"t": stamp, "endpoints": totals})

    def _endpoint_rate(self, endpoint: str, point: dict[str, Any]) -> float:
        """Invocations per second of a whole endpoint: a Serial pipeline's first container sees
        every invocation (and so does each later one); otherwise each invocation reaches one."""
        rates = {(c["variant"], c["container"]): c["rps"] or 0.0 for c in point["containers"]}
        summary = next((e for e in self._endpoints if e["name"].lower() == endpoint), None)
        if summary is None:
            return 0.0
        return sum(
            rates.get((v["name"], v["containers"][0]), 0.0) if v["mode"] == "Serial"
            else sum(rates.get((v["name"], c), 0.0) for c in v["containers"])
            for v in summary["variants"]
        )

    def _watch(self, endpoint: str, subs: list[Subscriber], sampled: bool) -> None:
        route = (self._table or {}).get(endpoint)
        running = self.sources.instances(endpoint)
        instances = {"endpoint": endpoint, "instances": self._instances.view(running, route)}
        history = self._history.get(endpoint)
        for sub in subs:
            self._send_changed(sub, "instances", instances)
            if sub.fresh:
                self._send(sub, "history", {"endpoint": endpoint, "points": list(history or ())})
            elif sampled and history:
                self._send(sub, "point", {"endpoint": endpoint, **history[-1]})
        if sampled and running and (endpoint not in self._stats_tasks or self._stats_tasks[endpoint].done()):
            self._stats_tasks[endpoint] = asyncio.create_task(self._gather_stats(endpoint))
        self._follow_logs(endpoint, subs)

    def _follow_logs(self, endpoint: str, subs: list[Subscriber]) -> None:
        files = self.sources.log_files(endpoint)
        following = [s for s in subs if not s.fresh]
        if following:
            lines = [
                {"instance": instance, "container": host, "text": text}
                for instance, host, path, _ in files
                for text in self._logs.new_lines(path)
            ]
            if lines:
                for sub in following:
                    self._send(sub, "logs", {"endpoint": endpoint, "reset": False, "lines": lines})
        fresh = [s for s in subs if s.fresh]
        if fresh:
            tail = [
                {"instance": instance, "container": host, "text": text}
                for instance, host, path, _ in files
                for text in self._logs.tail(path, TAIL_LINES)
            ]
            for sub in fresh:
                self._send(sub, "logs", {"endpoint": endpoint, "reset": True, "lines": tail})

    async def _gather_stats(self, endpoint: str) -> None:
        try:
            rows = await self.sources.stats(endpoint)
        except OSError as exc:  # best effort: the engine may be busy, a process may just have exited
            log.debug("console: stats of %s failed: %s", endpoint, exc)
            return
        totals: dict[tuple[str, str], tuple[float | None, int | None]] = {}
        for variant, _, s in rows:
            cpu, memory = totals.get((variant, s.hostname), (None, None))
            totals[(variant, s.hostname)] = (_add(cpu, s.cpu_percent), _add(memory, s.memory_bytes))
        self._stats[endpoint] = totals

    def _forget_all(self) -> None:
        """Nobody is watching: keep nothing that only the pages need."""
        self._history.clear()
        self._stats.clear()
        self._readings.clear()
        self._sampled_at = 0.0
        self._logs.forget(set())
        self._instances.forget(set())

    # --- subscribers ---------------------------------------------------------------------------

    def _send_changed(self, sub: Subscriber, event: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":"))
        if sub.sent.get(event) != data:
            sub.sent[event] = data
            self._put(sub, event, data)

    def _send(self, sub: Subscriber, event: str, payload: dict[str, Any]) -> None:
        self._put(sub, event, json.dumps(payload, separators=(",", ":")))

    def _put(self, sub: Subscriber, event: str, data: str) -> None:
        if sub.queue.qsize() >= MAX_BACKLOG:
            self._drop(sub)
            return
        sub.queue.put_nowait(f"event: {event}\ndata: {data}\n\n".encode())

    def _drop(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /_dockyard/console/events[?endpoint=NAME]: the live channel of one page."""
        endpoint = request.query.get("endpoint") or None
        allowed: Callable[[], bool] = request.get(STILL_ALLOWED, lambda: True)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        sub = Subscriber(endpoint.lower() if endpoint else None)
        self._subscribers.add(sub)
        self.wake()
        try:
            # Reconnect after 1 s when the connection drops (the browser's default is 3 s).
            await response.write(b"retry: 1000\n\n")
            # Messages come at least every second (traffic), so an ended session is noticed in time.
            while (data := await sub.queue.get()) is not None and allowed():
                await response.write(data)
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            self._subscribers.discard(sub)
        return response

    async def close(self, _: web.Application) -> None:
        """Server shutdown: end every open stream so that shutdown does not wait for them."""
        for sub in list(self._subscribers):
            self._drop(sub)

    async def lifecycle(self, _: web.Application) -> AsyncIterator[None]:
        """The loop runs for as long as the server does (an aiohttp cleanup context)."""
        task = asyncio.create_task(self.run(), name="console")
        yield
        tasks = [task, *self._stats_tasks.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _add(total: float | None, value: float | None) -> Any:
    if value is None:
        return total
    return value if total is None else total + value

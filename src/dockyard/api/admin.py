"""dockyard's own HTTP routes beside the AWS APIs: health, Prometheus metrics, and the
per-endpoint logs, stats and nodes the CLI shows (``dockyard logs``, ``stats``, ``endpoints``)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dockyard import errors
from dockyard.runtime.base import ContainerStats

PREFIX = "/_dockyard"


def routes(
    registry: CollectorRegistry,
    latency: Callable[[str], dict[tuple[str, str], dict[str, float]]],
    log_files: Callable[[str], list[tuple[str, str, Path, bool]]],
    stats: Callable[[str], Awaitable[list[tuple[str, str, ContainerStats]]]],
    known: Callable[[str], bool],
    serverless: Callable[[str], dict[str, dict[str, float]]] = lambda name: {},
    models: Callable[[str], list[dict[str, Any]]] = lambda name: [],
    backlog: Callable[[str], dict[str, float] | None] = lambda name: None,
    nodes: Callable[[str], dict[str, str]] = lambda name: {},
) -> list[web.RouteDef]:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _endpoint(request: web.Request) -> str:
        name = request.match_info["name"]
        if not known(name):
            raise errors.runtime_validation(f"Endpoint {name} not found.")
        return name

    async def logs(request: web.Request) -> web.Response:
        name = _endpoint(request)
        lines = _lines(request.query.get("lines", "100"))
        out = []
        for instance, hostname, path, live in log_files(name):
            text = path.read_text("utf-8", "replace").splitlines() if path.exists() else []
            text = text[max(len(text) - lines, 0):]
            out.append({"instance": instance, "container": hostname, "live": live, "lines": text})
        return web.json_response({"endpoint": name, "logs": out})

    async def endpoint_stats(request: web.Request) -> web.Response:
        name = _endpoint(request)
        traffic = latency(name)
        where = nodes(name)
        rows = [
            {"variant": variant, "instance": instance, "node": where.get(instance), "container": s.hostname,
             "cpu_percent": s.cpu_percent, "memory_bytes": s.memory_bytes,
             **_finite(traffic.get((variant, s.hostname), {}))}
            for variant, instance, s in await stats(name)
        ]
        # Cold starts and throttled requests per serverless variant (none for the others).
        # And per model of a multi-model endpoint: loaded or not, hits, misses, memory; and for
        # an asynchronous endpoint SageMaker's backlog metrics (None for the others).
        return web.json_response({"endpoint": name, "containers": rows, "serverless": serverless(name),
                                  "models": models(name), "backlog": backlog(name)})

    return [
        web.get(f"{PREFIX}/health", health),
        web.get("/metrics", metrics),
        web.get(f"{PREFIX}/endpoints/{{name}}/logs", logs),
        web.get(f"{PREFIX}/endpoints/{{name}}/stats", endpoint_stats),
    ]


def readiness_route(readiness: Callable[[], dict[str, dict[str, dict[str, Any]]]]) -> web.RouteDef:
    """``GET /_dockyard/endpoints``: per endpoint and variant, ready and desired instances (what
    ``dockyard endpoints`` shows as ``InService (0/1 ready)`` while an endpoint heals), the
    nodes its instances run on, and when and how its last replaced instance ended (or null)."""

    async def endpoints(_: web.Request) -> web.Response:
        return web.json_response({"endpoints": readiness()})

    return web.get(f"{PREFIX}/endpoints", endpoints)


def _lines(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise errors.runtime_validation(f"lines must be a whole number of lines (0 or more), not {value[:64]!r}.")
    return int(value)


def _finite(row: dict[str, float]) -> dict[str, float | None]:
    # JSON has no NaN: a container with no traffic yet has no percentiles.
    return {k: (None if math.isnan(v) else v) for k, v in row.items()}

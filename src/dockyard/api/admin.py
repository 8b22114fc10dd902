"""dockyard's own HTTP routes beside the AWS APIs: health, Prometheus metrics, and the
per-endpoint logs and stats the CLI shows (``dockyard logs``, ``dockyard stats``)."""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dockyard.api import errors
from dockyard.runtime.base import ContainerStats

PREFIX = "/_dockyard"


def routes(
    registry: CollectorRegistry,
    latency: Callable[[str], dict[tuple[str, str], dict[str, float]]],
    log_files: Callable[[str], list[tuple[str, str, Path]]],
    stats: Callable[[str], Awaitable[list[tuple[str, str, ContainerStats]]]],
    known: Callable[[str], bool],
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
        try:
            name = _endpoint(request)
        except errors.ApiError as exc:
            return exc.to_response()
        lines = int(request.query.get("lines", "100"))
        out = []
        for instance, hostname, path in log_files(name):
            text = path.read_text("utf-8", "replace").splitlines()[-lines:] if path.exists() else []
            out.append({"instance": instance, "container": hostname, "lines": text})
        return web.json_response({"endpoint": name, "logs": out})

    async def endpoint_stats(request: web.Request) -> web.Response:
        try:
            name = _endpoint(request)
        except errors.ApiError as exc:
            return exc.to_response()
        traffic = latency(name)
        rows = [
            {"variant": variant, "instance": instance, "container": s.hostname,
             "cpu_percent": s.cpu_percent, "memory_bytes": s.memory_bytes,
             **_finite(traffic.get((variant, s.hostname), {}))}
            for variant, instance, s in await stats(name)
        ]
        return web.json_response({"endpoint": name, "containers": rows})

    return [
        web.get(f"{PREFIX}/health", health),
        web.get("/metrics", metrics),
        web.get(f"{PREFIX}/endpoints/{{name}}/logs", logs),
        web.get(f"{PREFIX}/endpoints/{{name}}/stats", endpoint_stats),
    ]


def readiness_route(readiness: Callable[[], dict[str, dict[str, dict[str, int]]]]) -> web.RouteDef:
    """``GET /_dockyard/endpoints``: per endpoint and variant, ready and desired instances (what
    ``dockyard endpoints`` shows as ``InService (0/1 ready)`` while an endpoint heals)."""

    async def endpoints(_: web.Request) -> web.Response:
        return web.json_response({"endpoints": readiness()})

    return web.get(f"{PREFIX}/endpoints", endpoints)


def _finite(row: dict[str, float]) -> dict[str, float | None]:
    # JSON has no NaN: a container with no traffic yet has no percentiles.
    return {k: (None if v != v else v) for k, v in row.items()}

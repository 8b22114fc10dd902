"""The console's HTTP routes: the page at ``/``, its static files, JSON views and the live
channel, all under ``/_dockyard/console`` beside dockyard's other admin routes (and so behind
the same access rule as the rest of the server)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from dockyard.console import views
from dockyard.console.live import LiveChannel
from dockyard.strategy.advisor import (
    TIGHT_LATENCY_MS,
    TRAFFIC_LEVELS,
    Answers,
    advise,
    managed_frameworks,
)

STATIC = Path(__file__).parent / "static"
PREFIX = "/_dockyard/console"


def install(app: web.Application, live: LiveChannel) -> None:
    """Add the console to the server's application."""
    app.add_routes(routes(live))
    app.on_shutdown.append(live.close)
    app.cleanup_ctx.append(live.lifecycle)


def routes(live: LiveChannel) -> list[web.AbstractRouteDef]:
    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def endpoints(_: web.Request) -> web.Response:
        return web.json_response({"endpoints": live.endpoint_list()})

    async def endpoint(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        ep = live.sources.endpoint(name)
        if ep is None:
            return web.json_response({"message": f"Endpoint {name} not found."}, status=404)
        return web.json_response(views.deployment_details(ep))

    async def questions(_: web.Request) -> web.Response:
        return web.json_response({
            "frameworks": list(managed_frameworks()),
            "traffic": list(TRAFFIC_LEVELS),
            "defaults": asdict(Answers()),
            "tightLatencyMs": TIGHT_LATENCY_MS,
        })

    async def advice(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            answers = Answers(**body["answers"])
            directory = str(body.get("directory") or "my-model")
        except (ValueError, TypeError, KeyError) as exc:
            # A malformed body or an answer the advisor refuses: say which.
            return web.json_response({"message": f"Cannot advise on these answers: {exc}"}, status=400)
        return web.json_response(advise(answers, directory).to_json())

    return [
        web.get("/", page),
        web.static(f"{PREFIX}/static", STATIC),
        web.get(f"{PREFIX}/api/endpoints", endpoints),
        web.get(f"{PREFIX}/api/endpoints/{{name}}", endpoint),
        web.get(f"{PREFIX}/api/advice", questions),
        web.post(f"{PREFIX}/api/advice", advice),
        web.get(f"{PREFIX}/events", live.stream),
    ]

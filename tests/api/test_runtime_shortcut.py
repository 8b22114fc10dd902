"""The InvokeEndpoint shortcut: ``POST /endpoints/{name}/invocations`` reaches the application's
invoke handler through its middlewares without the router; everything else still goes through
the router. Here the router's route and the shortcut's handler answer differently, so each
response shows which way the request went."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dockyard import errors
from dockyard.api import runtime_api
from dockyard.api.errors import Handler, runtime_errors


def app() -> web.Application:
    @web.middleware
    async def outer(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Middlewares"] = "outer," + response.headers.get("X-Middlewares", "")
        return response

    @web.middleware
    async def inner(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Middlewares"] = "inner"
        return response

    async def via_shortcut(request: web.Request, endpoint: str) -> web.StreamResponse:
        if endpoint == "missing":
            raise errors.runtime_validation("Endpoint missing of account 123456789012 not found.")
        return web.Response(text=f"shortcut {endpoint} {await request.text()}")

    async def via_router(request: web.Request, endpoint: str) -> web.StreamResponse:
        return web.Response(text=f"router {endpoint} {await request.text()}")

    application = web.Application(middlewares=[runtime_errors, outer, inner])
    application[runtime_api.INVOKE] = via_shortcut
    application.add_routes(runtime_api.routes(via_router))

    async def other(request: web.Request) -> web.StreamResponse:
        return await via_router(request, "-")

    application.router.add_post("/other", other)
    return application


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    application = app()
    client = await aiohttp_client(application)
    runtime_api.shortcut(client.server.runner.server, application)
    return client


async def test_invoke_endpoint_goes_through_the_middlewares_in_order_but_not_the_router(client: TestClient) -> None:
    resp = await client.post("/endpoints/my-endpoint/invocations", data=b"[1, 2]")
    assert resp.status == 200
    assert await resp.text() == "shortcut my-endpoint [1, 2]"
    assert resp.headers["X-Middlewares"] == "outer,inner"


async def test_errors_of_the_shortcut_are_shaped_by_the_error_middleware(client: TestClient) -> None:
    resp = await client.post("/endpoints/missing/invocations", data=b"{}")
    assert resp.status == 400
    assert resp.headers["x-amzn-ErrorType"] == "ValidationError:"
    assert (await resp.json())["message"] == "Endpoint missing of account 123456789012 not found."


async def test_other_requests_go_to_the_router(client: TestClient) -> None:
    resp = await client.post("/other", data=b"x")
    assert await resp.text() == "router - x"
    # A method the route does not take: the router's 405, not the handler.
    resp = await client.get("/endpoints/my-endpoint/invocations")
    assert resp.status == 405
    assert (await client.post("/endpoints/my-endpoint/invocations/", data=b"x")).status == 404
    # A quoted slash the router unquotes into the name.
    resp = await client.post("/endpoints/a%2Fb/invocations", data=b"x")
    assert await resp.text() == "router a/b x"


async def test_a_request_that_expects_100_continue_is_answered_by_the_application(client: TestClient) -> None:
    resp = await client.post("/endpoints/my-endpoint/invocations", data=b"[3]", expect100=True)
    assert resp.status == 200
    assert await resp.text() == "router my-endpoint [3]"

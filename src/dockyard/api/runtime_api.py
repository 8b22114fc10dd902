"""The runtime API (REST-JSON): ``POST /endpoints/{name}/invocations``.

Reads the InvokeEndpoint headers, enforces the 6 MiB payload limit (by Content-Length, and for a
chunked upload by reading it to its end), hands the body to the gateway and writes the
gateway's ``InvocationResult``: whole, or streamed chunk by chunk. Errors become responses in
``api/errors.py``.

``shortcut`` serves this one route without aiohttp's application layer: the server hands
``POST /endpoints/{name}/invocations`` straight to the handler, through the same middlewares
(errors, connection deadlines, signatures), and everything else to the application's router.
Routing, the application's request handling and its middleware bookkeeping cost about as much
CPU per invocation as the handler itself (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import cast

import aiohttp
from aiohttp import hdrs, web

from dockyard import errors
from dockyard.api.bodies import VERIFIED_BODY, drain, read_capped
from dockyard.api.errors import Handler, request_id
from dockyard.gateway.invocation import WHOLE_BODY, Invocation, InvocationResult
from dockyard.gateway.proxy import Gateway

log = logging.getLogger(__name__)

# Header limits of the InvokeEndpoint input shape (botocore's sagemaker-runtime model).
_HEADER_LIMITS = {
    "Content-Type": 1024,
    "Accept": 1024,
    "X-Amzn-SageMaker-Accept": 1024,  # InvokeEndpointWithResponseStream's Accept
    "X-Amzn-SageMaker-Custom-Attributes": 1024,
    "X-Amzn-SageMaker-Target-Model": 1024,
    "X-Amzn-SageMaker-Target-Variant": 63,
    "X-Amzn-SageMaker-Target-Container-Hostname": 63,
    "X-Amzn-SageMaker-Inference-Id": 64,
    "X-Amzn-SageMaker-Session-Id": 256,
}


async def read_body(request: web.Request, max_payload: int) -> bytes | aiohttp.StreamReader:
    """The body whole, or — when its Content-Length says it is large — its stream, which the
    gateway passes on to the container as it arrives."""
    length = request.content_length
    if length is not None and length > max_payload:
        await drain(request)
        raise errors.payload_too_large(max_payload)
    if length is not None and length > WHOLE_BODY and VERIFIED_BODY not in request:
        return request.content
    # Small, or chunked (size unknown up front): read it all, up to the cap.
    return await read_capped(request, max_payload, errors.payload_too_large)


def parse_invocation(request: web.Request, endpoint: str) -> Invocation:
    headers = request.headers
    for name, limit in _HEADER_LIMITS.items():
        value = headers.get(name)
        if value is not None and len(value) > limit:
            raise errors.runtime_validation(
                f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {limit}"
            )
    return Invocation(
        endpoint=endpoint,
        headers=headers,
        target_variant=headers.get("X-Amzn-SageMaker-Target-Variant"),
        target_container=headers.get("X-Amzn-SageMaker-Target-Container-Hostname"),
        target_model=headers.get("X-Amzn-SageMaker-Target-Model"),
    )


async def write_result(request: web.Request, endpoint: str, result: InvocationResult) -> web.StreamResponse:
    headers = {**result.headers, "x-amzn-RequestId": request_id()}
    if result.chunks is None:
        return web.Response(body=result.body, headers=headers)
    out = web.StreamResponse(headers=headers)
    if result.content_length is not None:
        out.content_length = result.content_length
    async with aclosing(result.chunks) as chunks:
        # Wait for the first chunk before sending the status line: a container that fails
        # before its body starts still gets an error response (ModelError), not a cut-off 200.
        first = await anext(chunks, b"")
        try:
            await out.prepare(request)
            await out.write(first)
            async for chunk in chunks:
                await out.write(chunk)
        except (errors.AwsError, ConnectionError) as exc:
            # The status line is sent (or the client is gone): all that is left is to drop the
            # connection, so that the client sees a cut-off body rather than a short one that
            # looks whole.
            log.warning("invocation of %s cut off mid-response: %s", endpoint, exc)
            if request.transport is not None:
                request.transport.abort()
            return out
    await out.write_eof()
    return out


Observer = Callable[[Invocation, "bytes | aiohttp.StreamReader", InvocationResult], None]
Invoke = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
"""InvokeEndpoint of the endpoint named, answered."""

INVOKE: web.AppKey[Invoke] = web.AppKey("dockyard.invoke")
"""The application's InvokeEndpoint handler, for ``shortcut``."""
_PATH = "/endpoints/{name}/invocations"
# The route's path as aiohttp's router matches it (on ``rel_url.path_safe``); a name holding a
# '%' (which the router would unquote) is left to the router.
_SHORTCUT_PATH = re.compile(r"/endpoints/([^{}/%]+)/invocations")
_ENDPOINT = "dockyard.endpoint"  # the request key of the endpoint name the shortcut matched


def handler(gateway: Gateway, max_payload: int, check: Callable[[str], None] = lambda endpoint: None,
            observe: Observer = lambda inv, body, result: None) -> Invoke:
    """``check(endpoint)`` raises when the endpoint takes no InvokeEndpoint (asynchronous);
    ``observe`` sees each answered invocation (data capture) and must be cheap."""

    async def invoke(request: web.Request, endpoint: str) -> web.StreamResponse:
        inv = parse_invocation(request, endpoint)
        check(endpoint)
        body = await read_body(request, max_payload)
        result = await gateway.invoke(inv, body)
        observe(inv, body, result)
        return await write_result(request, endpoint, result)

    return invoke


def routes(invoke: Invoke) -> list[web.RouteDef]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await invoke(request, request.match_info["name"])

    return [web.post(_PATH, route)]


def shortcut(server: web.Server, app: web.Application) -> None:
    """Make ``server`` (the one ``app``'s runner made) hand InvokeEndpoint to ``app[INVOKE]``
    through ``app``'s middlewares, in their order, without the router; every other request —
    and an InvokeEndpoint that expects ``100 Continue``, which the application answers — goes
    to the application as before. Call it before the server accepts connections."""
    invoke = app[INVOKE]
    fallback = server.request_handler

    async def innermost(request: web.Request) -> web.StreamResponse:
        return await invoke(request, request[_ENDPOINT])

    # As aiohttp chains them: the first middleware outermost.
    chain: Handler = innermost
    for middleware in reversed(app.middlewares):
        chain = functools.partial(middleware, handler=chain)

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == hdrs.METH_POST and hdrs.EXPECT not in request.headers:
            match = _SHORTCUT_PATH.fullmatch(request.rel_url.path_safe)
            if match is not None:
                request[_ENDPOINT] = match.group(1)
                return await chain(cast(web.Request, request))  # the application's request factory made it
        return await fallback(request)

    server.request_handler = dispatch

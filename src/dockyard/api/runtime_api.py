"""The runtime API (REST-JSON): ``POST /endpoints/{name}/invocations``.

Reads the InvokeEndpoint headers, enforces the 6 MiB payload limit (by Content-Length, and for a
chunked upload by reading it to its end), hands the body to the gateway and writes the
gateway's ``InvocationResult``: whole, or streamed chunk by chunk. Errors become responses in
``api/errors.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import aclosing

import aiohttp
from aiohttp import web

from dockyard import errors
from dockyard.api.bodies import VERIFIED_BODY, drain, read_capped
from dockyard.api.errors import request_id
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
    too_large = errors.payload_too_large(max_payload)
    if length is not None and length > max_payload:
        await drain(request)
        raise too_large
    if length is not None and length > WHOLE_BODY and VERIFIED_BODY not in request:
        return request.content
    # Small, or chunked (size unknown up front): read it all, up to the cap.
    return await read_capped(request, max_payload, too_large)


def parse_invocation(request: web.Request) -> Invocation:
    headers = request.headers
    for name, limit in _HEADER_LIMITS.items():
        value = headers.get(name)
        if value is not None and len(value) > limit:
            raise errors.runtime_validation(
                f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {limit}"
            )
    return Invocation(
        endpoint=request.match_info["name"],
        headers=headers,
        target_variant=headers.get("X-Amzn-SageMaker-Target-Variant"),
        target_container=headers.get("X-Amzn-SageMaker-Target-Container-Hostname"),
        target_model=headers.get("X-Amzn-SageMaker-Target-Model"),
    )


async def write_result(request: web.Request, result: InvocationResult) -> web.StreamResponse:
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
            log.warning("invocation of %s cut off mid-response: %s", request.match_info["name"], exc)
            if request.transport is not None:
                request.transport.abort()
            return out
    await out.write_eof()
    return out


Observer = Callable[[Invocation, "bytes | aiohttp.StreamReader", InvocationResult], None]


def routes(gateway: Gateway, max_payload: int, check: Callable[[str], None] = lambda endpoint: None,
           observe: Observer = lambda inv, body, result: None) -> list[web.RouteDef]:
    """``check(endpoint)`` raises when the endpoint takes no InvokeEndpoint (asynchronous);
    ``observe`` sees each answered invocation (data capture) and must be cheap."""

    async def invoke(request: web.Request) -> web.StreamResponse:
        inv = parse_invocation(request)
        check(inv.endpoint)
        body = await read_body(request, max_payload)
        result = await gateway.invoke(inv, body)
        observe(inv, body, result)
        return await write_result(request, result)

    return [web.post("/endpoints/{name}/invocations", invoke)]

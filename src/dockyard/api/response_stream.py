"""InvokeEndpointWithResponseStream: ``POST /endpoints/{name}/invocations-response-stream``.

The request is an InvokeEndpoint one (same limits, same routing) except that the client's
``X-Amzn-SageMaker-Accept`` is the container's ``Accept``. The answer is an AWS event stream:
each chunk of the container's body becomes a ``PayloadPart`` event the moment it arrives — nothing
here waits to fill a buffer. A container that fails before its first byte gets the usual error
response (``ModelError``, 424); once events have gone out, a failure can only end the stream with
an exception event: ``ModelStreamError`` (``StreamBroken``, or ``ModelInvocationTimeExceeded``)
for the container, ``InternalStreamFailure`` for a fault of dockyard's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import aclosing

from aiohttp import web
from multidict import CIMultiDict

from dockyard import errors
from dockyard.api import eventstream
from dockyard.api.errors import request_id
from dockyard.api.runtime_api import parse_invocation, read_body
from dockyard.gateway.invocation import InvocationResult
from dockyard.gateway.proxy import Gateway

log = logging.getLogger(__name__)

ACCEPT = "X-Amzn-SageMaker-Accept"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def _response_headers(result: InvocationResult) -> dict[str, str]:
    """The container's Content-Type and custom attributes as InvokeEndpointWithResponseStream
    returns them: the HTTP Content-Type is the event stream's own."""
    container = result.headers
    headers = {"Content-Type": eventstream.CONTENT_TYPE, "x-amzn-RequestId": request_id()}
    for name, value in container.items():
        lower = name.lower()
        if lower == "content-type":
            headers["X-Amzn-SageMaker-Content-Type"] = value
        elif lower in ("x-amzn-invoked-production-variant", CUSTOM_ATTRIBUTES.lower()):
            headers[name] = value
    return headers


async def _events(request: web.Request, result: InvocationResult) -> web.StreamResponse:
    out = web.StreamResponse(headers=_response_headers(result))
    chunks = result.chunks
    assert chunks is not None, "the gateway relays every streamed invocation chunk by chunk"
    name = request.match_info["name"]
    end = b""
    async with aclosing(chunks):
        # The first chunk before the status line: a container failing before its first byte
        # gets a ModelError response, as SageMaker answers.
        first = await anext(chunks, b"")
        await out.prepare(request)
        try:
            if first:
                await out.write(eventstream.payload_parts(first))
            async for chunk in chunks:
                await out.write(eventstream.payload_parts(chunk))
        except ConnectionError:
            log.info("the client of %s left mid-stream", name)
            return out
        except errors.AwsError as exc:
            code = "ModelInvocationTimeExceeded" if chunks.timed_out else "StreamBroken"
            log.warning("the stream of %s was broken off by its container (%s): %s", name, code, exc.message)
            end = eventstream.exception("ModelStreamError", exc.message, code)
        except Exception as exc:
            log.exception("the stream of %s failed inside dockyard", name)
            failure = errors.internal_failure("InvokeEndpointWithResponseStream", exc)
            end = eventstream.exception("InternalStreamFailure", failure.message)
    try:
        if end:
            await out.write(end)
        await out.write_eof()
    except ConnectionError:
        log.info("the client of %s left mid-stream", name)
    return out


def routes(gateway: Gateway, max_payload: int, check: Callable[[str], None] = lambda endpoint: None) -> list[web.RouteDef]:
    """``check(endpoint)`` raises when the endpoint takes no real-time invocation (asynchronous)."""

    async def invoke_with_response_stream(request: web.Request) -> web.StreamResponse:
        inv = parse_invocation(request, request.match_info["name"])
        check(inv.endpoint)
        # The container's Accept is the client's X-Amzn-SageMaker-Accept (Accept itself is the
        # event stream's, which the client asked of dockyard).
        headers = CIMultiDict(request.headers)
        headers.popall("Accept", None)
        accept = headers.get(ACCEPT)
        if accept is not None:
            headers["Accept"] = accept
        inv = dataclasses.replace(inv, headers=headers, stream=True)
        body = await read_body(request, max_payload)
        return await _events(request, await gateway.invoke(inv, body))

    return [web.post("/endpoints/{name}/invocations-response-stream", invoke_with_response_stream)]

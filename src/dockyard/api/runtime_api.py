"""The runtime API (REST-JSON): ``POST /endpoints/{name}/invocations``.

Reads the InvokeEndpoint headers, enforces the 6 MiB payload limit, and hands the body to the
gateway. An oversized body is drained before the 413 answer: closing the socket mid-body would
reset the connection, and boto3 retries a reset four times.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from dockyard.api import auth, errors
from dockyard.gateway.proxy import STREAMING, WHOLE_BODY, Gateway, Invocation

log = logging.getLogger(__name__)

# Header limits of the InvokeEndpoint input shape (botocore's sagemaker-runtime model).
_HEADER_LIMITS = {
    "Content-Type": 1024,
    "Accept": 1024,
    "X-Amzn-SageMaker-Custom-Attributes": 1024,
    "X-Amzn-SageMaker-Target-Model": 1024,
    "X-Amzn-SageMaker-Target-Variant": 63,
    "X-Amzn-SageMaker-Target-Container-Hostname": 63,
    "X-Amzn-SageMaker-Inference-Id": 64,
    "X-Amzn-SageMaker-Session-Id": 256,
}
# Drain at most this much of an oversized body; beyond it closing is the lesser evil.
_DRAIN_LIMIT = 64 * 1024 * 1024


def _too_large(max_payload: int) -> errors.ApiError:
    # SageMaker's own wording, with status 413.
    return errors.runtime_validation(f"HTTP content length exceeded {max_payload} bytes.", status=413)


async def read_body(request: web.Request, max_payload: int) -> "bytes | aiohttp.StreamReader":
    verified = request.get(auth.VERIFIED_BODY)
    if verified is not None:  # read (once) to check its signature
        return verified
    length = request.content_length
    if length is not None and length > max_payload:
        if length <= _DRAIN_LIMIT:
            while await request.content.readany():
                pass
        raise _too_large(max_payload)
    if length is None:
        # Chunked upload: size unknown up front, so read with a cap.
        body = await request.content.read(max_payload + 1)
        if len(body) > max_payload:
            raise _too_large(max_payload)
        return body
    if length <= WHOLE_BODY:
        return await request.read()
    return request.content


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
    )


def routes(gateway: Gateway, max_payload: int) -> list[web.RouteDef]:
    async def invoke(request: web.Request) -> web.StreamResponse:
        try:
            inv = parse_invocation(request)
            body = await read_body(request, max_payload)
            return await gateway.invoke(inv, body, request)
        except Exception as exc:
            if request.get(STREAMING):
                raise  # the status line is sent: all that is left is to drop the connection
            if isinstance(exc, errors.ApiError):
                return exc.to_response()
            # A bug of ours: say so without a stack trace, and not as a 5xx that boto3 would
            # retry by invoking the model again.
            log.exception("invocation of %s failed", request.match_info["name"])
            return errors.ApiError(
                "InternalFailure", f"The invocation failed inside dockyard: {type(exc).__name__}: {exc}"
            ).to_response()

    async def unsupported(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        return errors.runtime_validation(
            f"{kind} is not supported by dockyard yet; use InvokeEndpoint (/invocations)."
        ).to_response()

    return [
        web.post("/endpoints/{name}/invocations", invoke),
        web.post("/endpoints/{name}/{kind:async-invocations|invocations-response-stream}", unsupported),
    ]

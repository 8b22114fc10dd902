"""AWS errors on the wire: the one place an ``AwsError`` becomes an HTTP response.

One aiohttp middleware per protocol, each owning the routes of its protocol:

- Control plane (AWS JSON 1.1, ``POST /``): botocore reads the code only from the body's
  ``__type``.
- Runtime (REST-JSON, ``/endpoints/…``) and dockyard's own ``/_dockyard/…`` routes: botocore
  prefers the ``x-amzn-ErrorType`` header; the body carries the code and message as well.

Any other exception is a bug of ours: logged with its traceback, and answered as a 400
``InternalFailure`` naming what failed — never a 5xx, which boto3 would retry.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard import errors
from dockyard.errors import AwsError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def request_id() -> str:
    # A random version-4 UUID without uuid4()'s os.urandom call (it names a request, it is no
    # secret), formatted directly: uuid.UUID's constructor and str() cost more than the rest.
    h = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def control_plane_response(error: AwsError) -> web.Response:
    """JSON 1.1: the code in the body's ``__type``."""
    return _response(error, JSON_CONTENT_TYPE, {})


def runtime_response(error: AwsError) -> web.Response:
    """REST-JSON: the code in the ``x-amzn-ErrorType`` header, and in the body for other clients."""
    return _response(error, "application/json", {"x-amzn-ErrorType": f"{error.code}:"})


def _response(error: AwsError, content_type: str, headers: dict[str, str]) -> web.Response:
    # ``message`` and ``Message`` both: AWS services spell it either way, and clients read either.
    body = {"__type": error.code, "message": error.message, "Message": error.message, **error.extra}
    return web.Response(
        status=error.status,
        body=json.dumps(body).encode(),
        content_type=content_type,
        headers={**headers, "x-amzn-RequestId": request_id()},
    )


def middleware(owns: Callable[[web.Request], bool], respond: Callable[[AwsError], web.Response]) -> Middleware:
    """A middleware that answers errors of the requests ``owns`` accepts with ``respond``."""

    @web.middleware
    async def aws_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not owns(request):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # aiohttp's own answers (404 of an unknown path, 405) stay as they are
        except Exception as exc:
            if request.writer is not None and request.writer.output_size > 0:
                raise  # a response has started: it cannot become an error response any more
            if isinstance(exc, AwsError):
                return respond(exc)
            what = request.headers.get("X-Amz-Target") or f"{request.method} {request.path}"
            log.exception("%s failed", what)
            return respond(errors.internal_failure(what, exc))

    return aws_errors


def is_control_plane(request: web.Request) -> bool:
    return request.method == "POST" and request.path == "/"


def is_runtime(request: web.Request) -> bool:
    return not is_control_plane(request)


control_plane_errors = middleware(is_control_plane, control_plane_response)
runtime_errors = middleware(is_runtime, runtime_response)

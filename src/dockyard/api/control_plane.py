"""The control-plane wire protocol (AWS JSON 1.1): ``POST /`` with ``X-Amz-Target``.

Two services share it: SageMaker (``SageMaker.<Operation>``) and Application Auto Scaling
(``AnyScaleFrontendService.<Operation>``). Reads the body (capped), parses the JSON
(depth-limited), validates it against the service's own botocore model, drops the members the
model does not know — so nothing unknown is stored or echoed — dispatches to the control plane by
operation name and writes the JSON answer. Errors become responses in ``api/errors.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dockyard import errors
from dockyard.api.bodies import read_capped
from dockyard.api.errors import JSON_CONTENT_TYPE, request_id
from dockyard.api.validation import InputValidationError, RequestValidator

# X-Amz-Target prefixes of the JSON 1.1 services served on ``POST /`` (botocore's targetPrefix).
SAGEMAKER = "SageMaker"
AUTOSCALING = "AnyScaleFrontendService"  # application-autoscaling
# SageMaker's largest requests (15 containers with full Environment maps) stay far below this.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# The deepest SageMaker input shape nests about ten levels; anything far deeper is an attack.
MAX_JSON_DEPTH = 64

Operation = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Service:
    """One JSON 1.1 service: its operations by name, and its botocore model's validator."""

    title: str  # as AWS names it, for "<title> has no operation X"
    operations: dict[str, Operation]
    validator: RequestValidator


def _json_default(value: Any) -> Any:
    raise TypeError(f"cannot serialise {type(value).__name__}")


def handler(services: dict[str, Service]) -> Callable[[web.Request], Any]:
    """``POST /``: the service is the ``X-Amz-Target`` prefix (``SageMaker.``, …), the operation
    its suffix."""

    async def control_plane(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        prefix, dot, name = target.partition(".")
        service = services.get(prefix) if dot else None
        if service is None:
            raise errors.unknown_operation(f"Missing or unknown X-Amz-Target header {target!r}.")
        operation = service.operations.get(name)
        if operation is None:
            if service.validator.has_operation(name):
                raise errors.unknown_operation(f"Operation {name} is not supported by dockyard.")
            raise errors.unknown_operation(f"{service.title} has no operation {name}.")
        params = parse(await read_capped(request, MAX_REQUEST_BYTES, errors.request_too_large))
        try:
            service.validator.validate(name, params)
        except InputValidationError as exc:
            raise errors.validation(exc.message) from None
        result = await operation(service.validator.known_members(name, params))
        return web.Response(
            body=json.dumps(result, default=_json_default).encode(),
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id()},
        )

    return control_plane


def parse(raw: bytes) -> dict[str, Any]:
    """The request's JSON object; SerializationException for anything else."""
    if not raw.strip():
        return {}
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:  # cheap: only then can it be too deep
        _check_depth(raw)
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise errors.serialization(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise errors.serialization("The request body must be a JSON object.")
    return params


def _check_depth(raw: bytes) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH before the parser recurses into it."""
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(raw):
        first = token.group()[0]
        if first in b"[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise errors.serialization(f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels.")
        elif first in b"]}":
            depth -= 1


# A whole JSON string (so brackets inside strings do not count), or one bracket.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)

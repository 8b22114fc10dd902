"""The control-plane wire protocol (AWS JSON 1.1): ``POST /`` with ``X-Amz-Target``.

Parses the JSON body, validates it against botocore's own service model, dispatches to the
control plane by operation name and writes the JSON answer. Every failure becomes an AWS-style
error with ``__type`` in the body; an unexpected bug is logged and answered as a 400
``InternalFailure`` naming the operation, so boto3 does not retry a request that would only
fail again.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Awaitable, Callable

from aiohttp import web

from dockyard.api import errors
from dockyard.api.validation import InputValidationError, RequestValidator

log = logging.getLogger(__name__)
TARGET_PREFIX = "SageMaker."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def _json_default(value: Any) -> Any:
    raise TypeError(f"cannot serialise {type(value).__name__}")


def handler(
    operations: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]], validator: RequestValidator
) -> Callable[[web.Request], Any]:
    async def control_plane(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        try:
            if not target.startswith(TARGET_PREFIX):
                raise errors.ApiError(
                    "UnknownOperationException", f"Missing or unknown X-Amz-Target header {target!r}."
                )
            name = target[len(TARGET_PREFIX):]
            operation = operations.get(name)
            if operation is None:
                if validator.has_operation(name):
                    raise errors.unknown_operation(name)
                raise errors.ApiError("UnknownOperationException", f"SageMaker has no operation {name}.")
            params = _parse(await request.read())
            validator.validate(name, params)
            result = await operation(params)
        except InputValidationError as exc:
            return errors.validation(exc.message).to_response()
        except errors.ApiError as exc:
            return exc.to_response()
        except Exception as exc:  # a bug of ours: answer clearly, without a stack trace
            log.exception("%s failed", target)
            return errors.ApiError("InternalFailure", f"{target} failed inside dockyard: {type(exc).__name__}: {exc}").to_response()
        return web.Response(
            body=json.dumps(result, default=_json_default).encode(),
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    return control_plane


def _parse(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise errors.ApiError("SerializationException", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise errors.ApiError("SerializationException", "The request body must be a JSON object.")
    return params

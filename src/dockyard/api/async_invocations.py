"""InvokeEndpointAsync: ``POST /endpoints/{name}/async-invocations`` (REST-JSON, 202).

Reads and checks the request headers against botocore's sagemaker-runtime model, has the queue
(``asyncinference/``) record the request durably, and answers at once with the inference id
(JSON body) and the output and failure locations (headers). The request has no body.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aiohttp import web

from dockyard import errors
from dockyard.api.bodies import drain
from dockyard.api.errors import request_id
from dockyard.asyncinference.queue import AsyncInference

_PREFIX = "X-Amzn-SageMaker-"
# header (after the prefix) → (max length, whole-value pattern or None); botocore's model, with
# file:// input as dockyard's local extension. An https:// input must also name an S3 object
# (asyncinference/object_urls.py), checked when the queue accepts it.
_STRINGS: dict[str, tuple[int, str | None]] = {
    "Content-Type": (1024, r"[\x00-\x7f]*"),
    "Accept": (1024, r"[\x00-\x7f]*"),
    "Custom-Attributes": (1024, r"[\x00-\x7f]*"),
    "Inference-Id": (64, r"\S[\x20-\x7e]*"),
    "InputLocation": (1024, r"((https|s3)://([^/]+)/?(.*)|file://.+)"),
    "S3OutputPathExtension": (512, r"(?!s3:|https:)(?!.*(^|/)\.\.(/|$))[a-zA-Z0-9!_.*'()/-]+"),
    "Filename": (32, r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*"),
}
_INTEGERS = {"RequestTTLSeconds": (60, 21600), "InvocationTimeoutSeconds": (1, 3600)}


def _invalid(header: str, constraint: str) -> errors.AwsError:
    return errors.runtime_validation(
        f"1 validation error detected: Value at '{header}' failed to satisfy constraint: {constraint}"
    )


def _strings(request: web.Request) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, (limit, pattern) in _STRINGS.items():
        value = request.headers.get(_PREFIX + name)
        if value is not None:
            if len(value) > limit:
                raise _invalid(_PREFIX + name, f"Member must have length less than or equal to {limit}")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise _invalid(_PREFIX + name, f"Member must satisfy regular expression pattern: {pattern}")
        out[name] = value
    return out


def _integers(request: web.Request) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name, (low, high) in _INTEGERS.items():
        value = request.headers.get(_PREFIX + name)
        if value is None:
            out[name] = None
            continue
        try:
            number = int(value)
        except ValueError:
            raise _invalid(_PREFIX + name, "Member must be an integer") from None
        if not low <= number <= high:
            raise _invalid(_PREFIX + name, f"Member must have value between {low} and {high}")
        out[name] = number
    return out


def routes(queue: AsyncInference) -> list[web.RouteDef]:
    async def invoke_async(request: web.Request) -> web.Response:
        await drain(request)  # the API has no body; whatever came is ignored
        strings, integers = _strings(request), _integers(request)
        input_location = strings["InputLocation"]
        if input_location is None:
            raise errors.runtime_validation(
                "1 validation error detected: Value null at 'inputLocation' failed to satisfy constraint: "
                "Member must not be null"
            )
        req = await queue.accept(
            request.match_info["name"], input_location,
            inference_id=strings["Inference-Id"], content_type=strings["Content-Type"],
            accept=strings["Accept"], custom_attributes=strings["Custom-Attributes"],
            ttl=integers["RequestTTLSeconds"], timeout=integers["InvocationTimeoutSeconds"],
            path_extension=strings["S3OutputPathExtension"], filename=strings["Filename"],
        )
        headers = {
            "x-amzn-RequestId": request_id(),
            _PREFIX + "OutputLocation": req.output_location,
            _PREFIX + "FailureLocation": req.failure_location,
        }
        return web.json_response({"InferenceId": req.inference_id}, status=202, headers=headers)

    return [web.post("/endpoints/{name}/async-invocations", invoke_async)]


def realtime_guard(queue: AsyncInference) -> Callable[[str], None]:
    """The check InvokeEndpoint makes first: an asynchronous endpoint takes InvokeEndpointAsync only."""

    def check(endpoint: str) -> None:
        if queue.is_async(endpoint):
            raise errors.runtime_validation(
                f"Endpoint {endpoint} is an asynchronous inference endpoint (its endpoint config has "
                "AsyncInferenceConfig); use InvokeEndpointAsync."
            )

    return check

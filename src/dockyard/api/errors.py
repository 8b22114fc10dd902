"""AWS-style errors: the exception every layer raises and the JSON bodies boto3 parses.

Control plane (AWS JSON 1.1): botocore reads the code only from the body's ``__type``.
Runtime (REST-JSON): botocore prefers the ``x-amzn-ErrorType`` header; we send both.
Every error here is a 4xx unless it is meant to be retried: boto3 silently re-sends a request
that got 500/502/503/504/429, which for an invocation means running the model again.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error with an AWS error code, an HTTP status and a message naming the problem."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def to_response(self) -> web.Response:
        body = {"__type": self.code, "message": self.message, "Message": self.message, **self.extra}
        return web.Response(
            status=self.status,
            body=json.dumps(body).encode(),
            content_type="application/x-amz-json-1.1",
            headers={"x-amzn-ErrorType": f"{self.code}:", "x-amzn-RequestId": str(uuid.uuid4())},
        )


# --- control plane -------------------------------------------------------------------------

def validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def not_found(kind: str, arn: str) -> ApiError:
    # The SageMaker SDK and the boto3 waiters recognise a missing resource by exactly this
    # code and the words "Could not find".
    return ApiError("ValidationException", f'Could not find {kind} "{arn}".')


def already_exists(kind: str, arn: str) -> ApiError:
    # The SageMaker SDK string-matches "Cannot create already existing" to reuse a model.
    return ApiError("ValidationException", f'Cannot create already existing {kind} "{arn}".')


def limit_exceeded(message: str) -> ApiError:
    return ApiError("ResourceLimitExceeded", message)


def unknown_operation(target: str) -> ApiError:
    return ApiError("UnknownOperationException", f"Operation {target} is not supported by dockyard.")


# --- runtime -------------------------------------------------------------------------------

def runtime_validation(message: str, status: int = 400) -> ApiError:
    return ApiError("ValidationError", message, status=status)


def model_error(message: str, original_status: int, original_message: str, log_stream_arn: str) -> ApiError:
    # 424, not 5xx: boto3 does not retry it, so a failing model runs exactly once.
    return ApiError(
        "ModelError",
        message,
        status=424,
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn=log_stream_arn,
    )


def service_unavailable(message: str) -> ApiError:
    # 503 on purpose: boto3 retries it with backoff, which is what a client wants while an
    # endpoint's instances are being brought back.
    return ApiError("ServiceUnavailable", message, status=503)

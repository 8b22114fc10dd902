"""The AWS error vocabulary every layer raises: an error code, an HTTP status and a message.

Framework-free on purpose: ``control/`` and ``gateway/`` raise these without knowing about HTTP
servers; ``api/errors.py`` turns them into the two wire formats (JSON 1.1 control plane, REST
runtime) in one place. Every error here is a 4xx unless it is meant to be retried: boto3
silently re-sends a request that got 500/502/503/504/429, which for an invocation means running
the model again.
"""

from __future__ import annotations

from typing import Any


class AwsError(Exception):
    """An error with an AWS error code, an HTTP status and a message naming the problem.

    ``extra`` holds further members of the error body (``OriginalStatusCode`` of a ModelError).
    """

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


# --- control plane -------------------------------------------------------------------------

def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def not_found(kind: str, arn: str) -> AwsError:
    # The SageMaker SDK and the boto3 waiters recognise a missing resource by exactly this
    # code and the words "Could not find".
    return AwsError("ValidationException", f'Could not find {kind} "{arn}".')


def already_exists(kind: str, arn: str) -> AwsError:
    # The SageMaker SDK string-matches "Cannot create already existing" to reuse a model.
    return AwsError("ValidationException", f'Cannot create already existing {kind} "{arn}".')


def object_not_found(message: str) -> AwsError:
    """Application Auto Scaling's "no such scalable target / scaling policy"."""
    return AwsError("ObjectNotFoundException", message)


def limit_exceeded(message: str) -> AwsError:
    return AwsError("ResourceLimitExceeded", message)


def unknown_operation(message: str) -> AwsError:
    return AwsError("UnknownOperationException", message)


def serialization(message: str) -> AwsError:
    """The request body is not the JSON object the protocol needs."""
    return AwsError("SerializationException", message)


def request_too_large(limit: int) -> AwsError:
    # 413 as AWS's front door answers an oversized request; not retried by boto3.
    return AwsError("RequestEntityTooLargeException", f"Request body exceeded {limit} bytes.", status=413)


# --- runtime -------------------------------------------------------------------------------

def runtime_validation(message: str, status: int = 400) -> AwsError:
    return AwsError("ValidationError", message, status=status)


def payload_too_large(limit: int) -> AwsError:
    # SageMaker's own wording, with status 413.
    return runtime_validation(f"HTTP content length exceeded {limit} bytes.", status=413)


def model_error(message: str, original_status: int, original_message: str, log_stream_arn: str) -> AwsError:
    # 424, not 5xx: boto3 does not retry it, so a failing model runs exactly once.
    return AwsError(
        "ModelError",
        message,
        status=424,
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn=log_stream_arn,
    )


def model_not_ready(message: str) -> AwsError:
    # SageMaker's answer while a multi-model endpoint loads the model asked for: 429, retried.
    return AwsError("ModelNotReadyException", message, status=429)


def service_unavailable(message: str) -> AwsError:
    # 503 on purpose: boto3 retries it with backoff, which is what a client wants while an
    # endpoint's instances are being brought back.
    return AwsError("ServiceUnavailable", message, status=503)


def throttling(message: str) -> AwsError:
    # 429, as the issue asks: boto3 retries it with backoff both by this code and by the status,
    # which is what a client of a serverless variant at its MaxConcurrency wants.
    return AwsError("ThrottlingException", message, status=429)


# --- either protocol -----------------------------------------------------------------------

def internal_failure(what: str, exc: BaseException) -> AwsError:
    """A bug of ours, said plainly. 400, not 500: boto3 would retry a 5xx, and a request that
    hit a bug would only hit it again."""
    return AwsError("InternalFailure", f"{what} failed inside dockyard: {type(exc).__name__}: {exc}")

"""What an asynchronous endpoint is configured with (``AsyncInferenceConfig``) and what one
accepted ``InvokeEndpointAsync`` is (``AsyncRequest``, stored as JSON until it finishes)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import Any

from dockyard.asyncinference.storage import Location

DEFAULT_TTL = 6 * 3600  # RequestTTLSeconds, SageMaker's default
DEFAULT_TIMEOUT = 900  # InvocationTimeoutSeconds
DEFAULT_CONCURRENCY = 4  # MaxConcurrentInvocationsPerInstance when unset (SageMaker picks its own)


@dataclass(frozen=True)
class AsyncConfig:
    max_concurrent: int
    output_path: str
    failure_path: str | None
    success_topic: str | None
    error_topic: str | None
    # Which notifications carry the response body: SUCCESS_NOTIFICATION_TOPIC, ERROR_NOTIFICATION_TOPIC.
    include_response_in: frozenset[str]

    @classmethod
    def from_endpoint_config(cls, config: dict[str, Any]) -> AsyncConfig | None:
        spec = config.get("AsyncInferenceConfig")
        if not spec:
            return None
        output = spec["OutputConfig"]
        notify = output.get("NotificationConfig", {})
        return cls(
            max_concurrent=int(spec.get("ClientConfig", {}).get("MaxConcurrentInvocationsPerInstance", DEFAULT_CONCURRENCY)),
            output_path=output.get("S3OutputPath", ""),
            failure_path=output.get("S3FailurePath"),
            success_topic=notify.get("SuccessTopic"),
            error_topic=notify.get("ErrorTopic"),
            include_response_in=frozenset(notify.get("IncludeInferenceResponseIn", ())),
        )


@dataclass(frozen=True)
class AsyncRequest:
    id: str
    endpoint: str
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    received: float  # epoch seconds
    ttl: int
    timeout: int

    @classmethod
    def accept_now(
        cls, endpoint: str, config: AsyncConfig, input_location: str, *, inference_id: str | None = None,
        content_type: str | None = None, accept: str | None = None, custom_attributes: str | None = None,
        ttl: int | None = None, timeout: int | None = None, path_extension: str | None = None,
        filename: str | None = None,
    ) -> AsyncRequest:
        """A new request with its locations: ``<S3OutputPath>[/<extension>]/<filename or id>.out``
        and the same name with ``-error.out`` under ``S3FailurePath`` (``S3OutputPath`` without it)."""
        request_id = str(uuid.uuid4())
        name = filename or f"{request_id}.out"
        failure_name = f"{filename or request_id}-error.out"
        output = Location.parse(config.output_path).join(path_extension or "", name)
        failure = Location.parse(config.failure_path or config.output_path).join(path_extension or "", failure_name)
        return cls(
            id=request_id, endpoint=endpoint, inference_id=inference_id or str(uuid.uuid4()),
            input_location=input_location, output_location=output, failure_location=failure,
            content_type=content_type, accept=accept, custom_attributes=custom_attributes,
            received=time.time(), ttl=ttl or DEFAULT_TTL, timeout=timeout or DEFAULT_TIMEOUT,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AsyncRequest:
        return cls(**data)

    def expired(self, now: float) -> bool:
        return now > self.received + self.ttl

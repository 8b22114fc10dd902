"""What one invocation is: the request the API layer reads (``Invocation``), the answer the gateway
returns (``InvocationResult``), and which headers cross between client and container."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.gateway.container_call import BodyStream

# Request headers of the InvokeEndpoint API that containers receive (SageMaker strips the rest).
FORWARDED_REQUEST_HEADERS = (
    "Content-Type",
    "Accept",
    "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-Target-Model",
    "X-Amzn-SageMaker-Inference-Id",
    "X-Amzn-SageMaker-Session-Id",
    "X-Amzn-SageMaker-Enable-Explanations",
)
# Container response headers the InvokeEndpoint API returns to the client.
RETURNED_RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-New-Session-Id",
    "X-Amzn-SageMaker-Closed-Session-Id",
)
# Bodies up to this size are read in one piece; larger ones stream chunk by chunk.
WHOLE_BODY = 256 * 1024


@dataclass(frozen=True)
class Invocation:
    """What one InvokeEndpoint asks for, read from its headers by the API layer."""

    endpoint: str
    headers: Mapping[str, str]
    target_variant: str | None
    target_container: str | None
    # TargetModel: which model of a multi-model endpoint (its path under the prefix).
    target_model: str | None = None
    # InvokeEndpointWithResponseStream: the body is relayed chunk by chunk, whatever its size.
    stream: bool = False


@dataclass(frozen=True)
class InvocationResult:
    """The answer to an invocation: headers for the client, and the body whole (``body``) or as
    ``chunks`` of ``content_length`` bytes (None: unknown). A failure while ``chunks`` is read
    raises ``AwsError``; once the status line is sent it can only end the response. ``chunks``
    must be closed (``aclose``) however the writing ends."""

    headers: dict[str, str]
    body: bytes = b""
    chunks: BodyStream | None = None
    content_length: int | None = None

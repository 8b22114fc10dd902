"""SNS notifications of finished asynchronous requests, in SageMaker's message shape, published
with boto3 (any SNS-compatible service via ``AWS_ENDPOINT_URL_SNS``). A notification that cannot
be published is logged; it never changes the request's outcome, which is already stored."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dockyard.artifacts.aws_clients import LazyClient
from dockyard.asyncinference.requests import AsyncRequest

log = logging.getLogger(__name__)
# SNS messages are at most 256 KiB: a response body larger than this is left out of the message.
MAX_INCLUDED_BODY = 128 * 1024


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def message(
    req: AsyncRequest, region: str, now: float, *, content_type: str | None, failure: str | None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """The notification of ``req``: completed (``failure`` None) or failed with that reason;
    ``body`` is included as ``responseBody.content`` when given (IncludeInferenceResponseIn)."""
    request_parameters = {"endpointName": req.endpoint, "inputLocation": req.input_location}
    if req.content_type:
        request_parameters["contentType"] = req.content_type
    if req.accept:
        request_parameters["accept"] = req.accept
    if req.custom_attributes:
        request_parameters["customAttributes"] = req.custom_attributes
    response: dict[str, Any] = {"contentType": content_type or "application/json"}
    if failure is None:
        response["outputLocation"] = req.output_location
    else:
        response["failureLocation"] = req.failure_location
    out: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _timestamp(now),
        "receivedTime": _timestamp(req.received),
        "invocationStatus": "Completed" if failure is None else "Failed",
        "requestParameters": request_parameters,
        "responseParameters": response,
        "inferenceId": req.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if failure is not None:
        out["failureReason"] = failure
    if body is not None and len(body) <= MAX_INCLUDED_BODY:
        out["responseBody"] = {"content": body.decode("utf-8", "replace")}
    return out


class Notifier:
    def __init__(self, region: str) -> None:
        self._region = region
        self._clients = LazyClient("sns")

    def publish(self, topic: str, notification: dict[str, Any]) -> None:
        """Blocking: run it in a thread."""
        # The topic's region, as SageMaker publishes to the topic named.
        region = topic.split(":")[3] if topic.count(":") >= 5 else self._region
        try:
            self._clients.get(region or self._region).publish(TopicArn=topic, Message=json.dumps(notification))
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not publish the notification of inference %s to %s: %s",
                        notification.get("inferenceId"), topic, exc)

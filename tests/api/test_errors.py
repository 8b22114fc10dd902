"""AWS errors on the wire: each protocol's middleware maps ``AwsError`` to the response botocore
parses, and turns a bug of ours into a logged 400 ``InternalFailure`` — never a 5xx."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dockyard import errors
from dockyard.api.errors import control_plane_errors, request_id, runtime_errors


def app() -> web.Application:
    async def control_plane(request: web.Request) -> web.Response:
        if request.headers["X-Amz-Target"] == "SageMaker.ListModels":
            raise KeyError("oops")
        raise errors.not_found("model", "arn:aws:sagemaker:us-east-1:123456789012:model/m")

    async def model_error(_: web.Request) -> web.Response:
        raise errors.model_error("it failed", 500, "boom", "arn:log")

    async def bug(_: web.Request) -> web.Response:
        raise KeyError("oops")

    application = web.Application(middlewares=[control_plane_errors, runtime_errors])
    application.router.add_post("/", control_plane)
    application.router.add_post("/endpoints/e/invocations", model_error)
    application.router.add_get("/_dockyard/bug", bug)
    return application


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await aiohttp_client(app())


async def test_control_plane_errors_are_json_1_1_with_type(client: TestClient) -> None:
    resp = await client.post("/", headers={"X-Amz-Target": "SageMaker.DescribeModel"})
    assert resp.status == 400
    assert resp.content_type == "application/x-amz-json-1.1"
    assert "x-amzn-ErrorType" not in resp.headers  # JSON 1.1: the body's __type is the code
    assert await resp.json(content_type=None) == {
        "__type": "ValidationException",
        "message": 'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/m".',
        "Message": 'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/m".',
    }


async def test_runtime_errors_carry_the_error_type_header_and_extra_members(client: TestClient) -> None:
    resp = await client.post("/endpoints/e/invocations")
    assert resp.status == 424
    assert resp.headers["x-amzn-ErrorType"] == "ModelError:"
    body = await resp.json()
    assert (body["__type"], body["message"]) == ("ModelError", "it failed")
    assert (body["OriginalStatusCode"], body["OriginalMessage"], body["LogStreamArn"]) == (500, "boom", "arn:log")


async def test_a_bug_is_a_logged_400_internal_failure(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        resp = await client.get("/_dockyard/bug")
    assert resp.status == 400
    assert resp.headers["x-amzn-ErrorType"] == "InternalFailure:"
    assert (await resp.json())["message"] == "GET /_dockyard/bug failed inside dockyard: KeyError: 'oops'"
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and record.getMessage() == "GET /_dockyard/bug failed"

    resp = await client.post("/", headers={"X-Amz-Target": "SageMaker.ListModels"})
    assert resp.status == 400 and "x-amzn-ErrorType" not in resp.headers
    body = await resp.json(content_type=None)
    assert body["__type"] == "InternalFailure"
    assert body["message"] == "SageMaker.ListModels failed inside dockyard: KeyError: 'oops'"


async def test_aiohttp_answers_for_unknown_paths_stay_as_they_are(client: TestClient) -> None:
    resp = await client.get("/nowhere")
    assert resp.status == 404


def test_request_ids_are_random_version_4_uuids() -> None:
    ids = [request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid  # lower-case hex, dashes where uuid puts them
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122

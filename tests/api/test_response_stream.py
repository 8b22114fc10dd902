"""The response-stream writer in-process, on a stub gateway: a fault of dockyard's after the first
event ends the stream with an InternalStreamFailure event (a container's own failures are covered
end to end in tests/e2e/test_response_stream.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from botocore.eventstream import EventStreamBuffer

from dockyard.api import response_stream
from dockyard.api.errors import runtime_errors
from dockyard.gateway.invocation import InvocationResult


class BrokenAfterOne:
    """A body stream whose second chunk hits a bug."""

    timed_out = False
    closed = False

    def __init__(self) -> None:
        self._chunks = self._generate()

    async def _generate(self) -> AsyncIterator[bytes]:
        yield b"first"
        raise KeyError("a bug")

    def __aiter__(self) -> BrokenAfterOne:
        return self

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        self.closed = True


class StubGateway:
    def __init__(self) -> None:
        self.invocations: list[Any] = []
        self.body = BrokenAfterOne()

    async def invoke(self, inv: Any, body: bytes) -> InvocationResult:
        self.invocations.append(inv)
        headers = {"Content-Type": "text/plain", "x-Amzn-Invoked-Production-Variant": "AllTraffic"}
        return InvocationResult(headers, chunks=self.body)  # type: ignore[arg-type]


async def test_a_fault_mid_stream_is_an_internal_stream_failure_event(
    aiohttp_client: Callable[..., Awaitable[Any]],
) -> None:
    gateway = StubGateway()
    app = web.Application(middlewares=[runtime_errors])
    app.add_routes(response_stream.routes(gateway, 6 * 1024 * 1024))  # type: ignore[arg-type]
    client = await aiohttp_client(app)
    resp = await client.post("/endpoints/ep/invocations-response-stream", data=b"{}",
                             headers={"Accept": "application/vnd.amazon.eventstream",
                                      "X-Amzn-SageMaker-Accept": "text/plain"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
    assert resp.headers["X-Amzn-SageMaker-Content-Type"] == "text/plain"
    buffer = EventStreamBuffer()
    buffer.add_data(await resp.read())
    first, failure = list(buffer)
    assert first.payload == b"first"
    assert failure.headers[":exception-type"] == "InternalStreamFailure"
    assert "KeyError" in json.loads(failure.payload)["Message"]
    assert gateway.body.closed
    (inv,) = gateway.invocations
    assert inv.stream and inv.headers["Accept"] == "text/plain"  # the container's Accept

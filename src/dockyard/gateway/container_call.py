"""One call from the gateway to one container, and the body it answers as a stream.

``ContainerCall`` sends a request through the gateway's ``Upstream``, turns every failure of the
container into ``ModelError`` — except a refused or unanswered connection, which it leaves to the
gateway's failover — and records the container's metrics once, however the call ended.
``BodyStream`` relays a large or streamed answer chunk by chunk and ends the call when closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from dockyard.errors import AwsError
from dockyard.gateway.routing import ContainerRoute
from dockyard.gateway.upstream import UpstreamError, UpstreamNotSent, UpstreamResponse, UpstreamUnanswered

if TYPE_CHECKING:
    from aiohttp import StreamReader

    from dockyard.gateway.proxy import Gateway

# How much of a failing container's answer becomes the ModelError's OriginalMessage.
_ORIGINAL_MESSAGE_LIMIT = 4096


class ContainerCall:
    """One request to one container: maps every failure of the container to ModelError (except a
    refused or unanswered connection, left to ``Gateway._send`` for failover) and records the container's metrics
    once, in ``finish``."""

    def __init__(self, gateway: Gateway, endpoint: str, container: ContainerRoute, path: str = "/invocations") -> None:
        self._gw, self._endpoint, self.container, self._path = gateway, endpoint, container, path
        self._resp: UpstreamResponse | None = None
        self._start = time.perf_counter()
        self._failed = False
        self._finished = False

    async def start(self, headers: dict[str, str], body: bytes | StreamReader) -> UpstreamResponse:
        c = self.container
        try:
            resp = await self._gw.upstream.post(c.host, c.port, self._path, headers.items(), body)
        except (UpstreamNotSent, UpstreamUnanswered):
            self._failed = True
            raise
        except (asyncio.TimeoutError, UpstreamError) as exc:
            self._failed = True
            raise self.as_model_error(exc) from None
        self._resp = resp
        if resp.status >= 300:
            self._failed = True
            try:
                text = (await resp.read_at_most(_ORIGINAL_MESSAGE_LIMIT)).decode("utf-8", "replace")
            except (asyncio.TimeoutError, UpstreamError):
                text = ""
            raise self._gw.model_error(self._endpoint, c.hostname, resp.status, text)
        return resp

    async def read_all(self, resp: UpstreamResponse) -> bytes:
        try:
            return await resp.read()
        except (asyncio.TimeoutError, UpstreamError) as exc:
            # The container failed while its body was being read (it died, or was too slow).
            self._failed = True
            raise self.as_model_error(exc) from None

    def fail(self) -> None:
        self._failed = True

    def finish(self) -> None:
        """Release the connection and record the call: once, however it ended."""
        if self._finished:
            return
        self._finished = True
        if self._resp is not None:
            self._resp.release()
        metrics = self.container.metrics
        metrics.invocations.inc()
        if self._failed:
            metrics.errors.inc()
        metrics.latency.observe(time.perf_counter() - self._start)

    def as_model_error(self, exc: BaseException) -> AwsError:
        """The ModelError a timeout or a broken exchange with the container becomes."""
        hostname = self.container.hostname
        if isinstance(exc, asyncio.TimeoutError):
            return self._gw.model_error(
                self._endpoint, hostname, 0,
                f"Your invocation timed out while waiting for a response from container {hostname}. Review "
                "the latency metrics for each container, resolve the issue, and try again.",
            )
        stopped = self._gw.stopped.get(self.container.url)
        if stopped is not None:
            return self._gw.model_error(self._endpoint, hostname, 0, stopped)
        return self._gw.model_error(self._endpoint, hostname, 0, f"the container could not be reached: {exc}")


class BodyStream:
    """A container's response body, chunk by chunk as it arrives. ``aclose()`` ends the call
    (connection released, metrics recorded) and must be called however the relaying ends."""

    def __init__(self, call: ContainerCall, chunks: AsyncIterator[bytes]) -> None:
        self._call = call
        self._chunks = chunks
        # Why the body broke off, once it has: the container ran out of time (True) or it failed.
        self.timed_out = False
        # Called once the stream is closed (a serverless variant's concurrency slot).
        self.on_close: list[Callable[[], None]] = []

    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except (asyncio.TimeoutError, UpstreamError) as exc:
            # The container died or stalled half way through its answer.
            self._call.fail()
            self.timed_out = isinstance(exc, asyncio.TimeoutError)
            raise self._call.as_model_error(exc) from None

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()  # type: ignore[attr-defined]
        finally:
            self._call.finish()
            for callback in self.on_close:
                callback()
            self.on_close.clear()

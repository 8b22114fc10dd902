"""The gateway's count of invocations in flight per instance (``gateway/inflight.py``)."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.gateway.inflight import InFlight
from dockyard.gateway.invocation import InvocationResult


class _Chunks:
    """Stands in for a BodyStream: what runs when the stream closes."""

    def __init__(self) -> None:
        self.on_close: list = []

    def close(self) -> None:
        for callback in self.on_close:
            callback()


async def _answer(result: InvocationResult, gate: asyncio.Event | None = None) -> InvocationResult:
    if gate is not None:
        await gate.wait()
    return result


async def test_a_streamed_answer_is_in_flight_until_its_stream_closes() -> None:
    in_flight = InFlight()
    chunks = _Chunks()
    result = await in_flight.holding("i-1", _answer(InvocationResult({}, chunks=chunks)))  # type: ignore[arg-type]
    assert in_flight.count("i-1") == 1
    waiter = asyncio.ensure_future(in_flight.drained(["i-1", "i-2"], timeout=30))
    await asyncio.sleep(0)
    assert not waiter.done()
    assert result.chunks is chunks
    chunks.close()
    assert await waiter == [] and in_flight.count("i-1") == 0


async def test_a_whole_answer_or_a_failure_leaves_nothing_in_flight() -> None:
    in_flight = InFlight()
    await in_flight.holding("i-1", _answer(InvocationResult({}, body=b"ok")))

    async def fails() -> InvocationResult:
        raise RuntimeError("the container went away")

    with pytest.raises(RuntimeError, match="the container went away"):
        await in_flight.holding("i-1", fails())
    assert in_flight.count("i-1") == 0
    assert await in_flight.drained(["i-1"], timeout=0) == []


async def test_draining_gives_up_after_its_timeout_and_names_the_busy_instances() -> None:
    in_flight = InFlight()
    gate = asyncio.Event()
    held = asyncio.ensure_future(in_flight.holding("i-1", _answer(InvocationResult({}, body=b""), gate)))
    await asyncio.sleep(0)
    assert await in_flight.drained(["i-1"], timeout=0.01) == ["i-1"]
    gate.set()
    await held
    assert in_flight.count("i-1") == 0

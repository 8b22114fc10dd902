"""Invocations under way on each instance, so that an instance leaving service is drained first.

An update (blue/green, a new instance count, autoscaling) publishes the new routes, then stops the
instances that are no longer routed. A request that had already chosen one of them — waiting for
its model to load, between two containers of a Serial pipeline, or still streaming its answer —
would fail if the instance stopped under it. The gateway counts such requests per instance, from
the moment one is chosen until its answer has gone, and the reconciler waits for the count to
reach zero (bounded by the invocation timeout) before it stops an instance, as SageMaker lets
in-flight requests finish before it terminates the old fleet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from dockyard.gateway.invocation import InvocationResult


class InFlight:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        # Instance id → set once its count falls to zero while someone waits for that.
        self._idle: dict[str, asyncio.Event] = {}

    def count(self, instance_id: str) -> int:
        return self._counts.get(instance_id, 0)

    async def holding(self, instance_id: str, call: Awaitable[InvocationResult]) -> InvocationResult:
        """``call``'s result, counted on ``instance_id`` until its answer has gone (a streamed
        answer: until its stream closes)."""
        release = self._enter(instance_id)
        return await held_until_sent(call, release)

    async def drained(self, instance_ids: Iterable[str], timeout: float) -> list[str]:
        """Wait until nothing is in flight on ``instance_ids``, at most ``timeout`` seconds; the
        ones still busy then."""
        busy = [i for i in instance_ids if self.count(i)]
        waits = [asyncio.ensure_future(self._idle.setdefault(i, asyncio.Event()).wait()) for i in busy]
        if waits:
            try:
                await asyncio.wait(waits, timeout=timeout)
            finally:
                for w in waits:
                    w.cancel()
        return [i for i in busy if self.count(i)]

    def _enter(self, instance_id: str) -> Callable[[], None]:
        self._counts[instance_id] = self._counts.get(instance_id, 0) + 1
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            left = self._counts[instance_id] - 1
            if left:
                self._counts[instance_id] = left
                return
            del self._counts[instance_id]
            if (idle := self._idle.pop(instance_id, None)) is not None:
                idle.set()

        return release


async def held_until_sent(call: Awaitable[InvocationResult], release: Callable[[], None]) -> InvocationResult:
    """Run ``call``; ``release`` once its answer has gone: at once for a whole body or a failure,
    when the stream closes for a streamed one."""
    try:
        result = await call
    except BaseException:
        release()
        raise
    if result.chunks is None:
        release()
    else:
        result.chunks.on_close.append(release)
    return result

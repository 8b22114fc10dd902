"""Waiting for an ``asyncio.Event`` with a timeout, without losing a cancellation.

Every background loop here (the reconciler, the asynchronous queue's dispatcher, the console's
live channel) sleeps on a doorbell event for at most an interval, and ends when its task is
cancelled at shutdown. ``asyncio.wait_for(event.wait(), timeout)`` cannot be used for that before
Python 3.12: a cancellation that arrives as the event is set is swallowed (CPython gh-86296), so
the loop goes round again and the shutdown that awaits its task waits forever.
"""

from __future__ import annotations

import asyncio


async def rung(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set, at most ``timeout`` seconds; whether it was. A cancellation
    always propagates."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait((waiter,), timeout=timeout)
    finally:
        waiter.cancel()
    return bool(done)

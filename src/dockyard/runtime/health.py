"""Polling a container's ``/ping`` until it passes the SageMaker health check.

One poll for every runtime and for ``dockyard check``: one GET ``/ping`` per try, backing off
from 10 ms to 200 ms between tries (``contract``), until HTTP 200, the container exits, or the
startup budget is spent. The caller supplies the try (the runtimes give it the contract's 2 s,
the checker measures it) and how to tell that the container exited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from dockyard.runtime import contract


class NotHealthy(Exception):
    """The container exited or the deadline passed; ``str(e)`` says which."""


@dataclass
class PingPoll:
    """What polling /ping saw."""

    exit_code: int | None = None
    last_status: int | None = None
    # Seconds from the start of the poll to the first HTTP answer, and to the first 200.
    answered: float | None = None
    healthy: float | None = None


P = TypeVar("P", bound=PingPoll)


async def poll_ping(
    attempt: Callable[[], Awaitable[int | None]],
    exited: Callable[[], Awaitable[int | None]],
    budget: float,
    seen: P,
) -> P:
    """Call ``attempt()`` (one GET /ping: its status, None for no answer) until 200, until
    ``exited()`` gives an exit code, or for ``budget`` seconds; record what it saw in ``seen``."""
    started = time.monotonic()
    delay = contract.PING_FIRST_DELAY
    while True:
        seen.exit_code = await exited()
        if seen.exit_code is not None:
            return seen
        seen.last_status = await attempt()
        elapsed = time.monotonic() - started
        if seen.last_status is not None and seen.answered is None:
            seen.answered = elapsed
        if seen.last_status == 200:
            seen.healthy = elapsed
            return seen
        if elapsed >= budget:
            return seen
        await asyncio.sleep(delay)
        delay = min(delay * 2, contract.PING_MAX_DELAY)


async def ping(session: aiohttp.ClientSession, url: str) -> int | None:
    """The status of one GET /ping within the contract's time, or None if the container did not answer."""
    try:
        timeout = aiohttp.ClientTimeout(total=contract.PING_TIMEOUT)
        async with session.get(f"{url}/ping", timeout=timeout) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None


async def wait_healthy(
    session: aiohttp.ClientSession,
    url: str,
    timeout: float,
    exited: Callable[[], Awaitable[int | None]],
) -> None:
    """Return once ``url/ping`` answers 200; ``exited()`` gives the exit code if the container stopped."""
    seen = await poll_ping(lambda: ping(session, url), exited, timeout, PingPoll())
    if seen.exit_code is not None:
        raise NotHealthy(f"exited with code {seen.exit_code} before passing the ping health check")
    if seen.healthy is None:
        what = f"last /ping answered HTTP {seen.last_status}" if seen.last_status else "/ping never answered"
        raise NotHealthy(f"did not pass the ping health check within {timeout:g} s ({what})")

"""Waiting for a container to pass the SageMaker ping health check.

Shared by every runtime: GET ``/ping`` with a 2 s timeout per request (the contract's limit),
backing off from 10 ms to 200 ms between tries, until HTTP 200, the container exits, or the
startup deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import aiohttp

PING_TIMEOUT = 2.0


class NotHealthy(Exception):
    """The container exited or the deadline passed; ``str(e)`` says which."""


async def ping(session: aiohttp.ClientSession, url: str) -> int | None:
    """The status of one GET /ping, or None if the container did not answer."""
    try:
        async with session.get(f"{url}/ping", timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT)) as resp:
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
    deadline = time.monotonic() + timeout
    delay = 0.01
    last_status: int | None = None
    while True:
        code = await exited()
        if code is not None:
            raise NotHealthy(f"exited with code {code} before passing the ping health check")
        last_status = await ping(session, url)
        if last_status == 200:
            return
        if time.monotonic() >= deadline:
            seen = f"last /ping answered HTTP {last_status}" if last_status else "/ping never answered"
            raise NotHealthy(f"did not pass the ping health check within {timeout:g} s ({seen})")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)

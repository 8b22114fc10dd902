"""Request bodies read with a cap, by Content-Length or chunked alike.

A body over its cap is drained before the 413 answer is sent: closing the socket mid-body would
reset the connection, and boto3 retries a reset four times. Beyond ``DRAIN_LIMIT`` closing is the
lesser evil.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dockyard.errors import AwsError

# Drain at most this much of an oversized body.
DRAIN_LIMIT = 64 * 1024 * 1024
VERIFIED_BODY = "dockyard.verified_body"
"""The request key of a body already read whole, by ``api/auth.py`` to check its signature."""


async def read_capped(request: web.Request, limit: int, too_large: Callable[[int], AwsError]) -> bytes:
    """The whole body, or ``too_large(limit)`` raised once more than ``limit`` bytes are sent."""
    verified = request.get(VERIFIED_BODY)
    if verified is not None:
        return verified
    length = request.content_length
    if length is not None and length > limit:
        await drain(request)
        raise too_large(limit)
    # One read() returns only what has arrived so far: read until the end of the body (for a
    # chunked upload, its terminating chunk). Usually the first read has it all.
    content = request.content
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = await content.read(limit + 1 - size)
        if not part:
            return b"".join(parts)
        if not parts and content.at_eof() and len(part) <= limit:
            return part
        parts.append(part)
        size += len(part)
    await drain(request)
    raise too_large(limit)


async def drain(request: web.Request) -> None:
    """Read and drop what is left of the body, up to ``DRAIN_LIMIT`` bytes in all."""
    left = DRAIN_LIMIT
    while left > 0:
        chunk = await request.content.readany()
        if not chunk:
            return
        left -= len(chunk)

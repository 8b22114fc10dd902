"""The accept loop's "Too many open files" is reported as a count, once per interval."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from dockyard.api import connections


def test_fd_exhaustion_is_logged_once_per_interval_and_other_errors_as_before(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        connections.quiet_fd_exhaustion(loop)
        with caplog.at_level(logging.WARNING):
            for _ in range(1000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(errno.EMFILE, "Too many open files")})
            loop.call_exception_handler({"message": "something else", "exception": ValueError("boom")})
    finally:
        loop.close()
    exhausted = [r for r in caplog.records if "too many open files" in r.getMessage()]
    assert [r.getMessage() for r in exhausted] == ["could not accept 1 connection(s): too many open files"]
    assert any("something else" in r.getMessage() for r in caplog.records)  # asyncio's default handler

"""Client connections: a cap on how many are open, and deadlines for clients that send slowly.

aiohttp's server has no header or body read timeout: a client that opens a connection and sends
half a request line holds a socket until the keep-alive timeout, and a thousand of them exhaust
the process's file descriptors. Here every connection must complete its request headers within
``header_timeout`` of connecting (or, on a kept-alive connection, of the next request's first
byte), and its body within ``body_timeout`` of the headers. At the cap, the oldest connection
still waiting for headers makes room for a new one; only when every connection is busy is the new
one refused. One sweep a second enforces the deadlines; what was closed is logged at most once a
minute, as counts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from dockyard import errors
from dockyard.api.errors import Handler, runtime_response

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # seconds between two reports of closed connections or exhausted descriptors
_SWEEP_INTERVAL = 1.0
_FD_RESERVE = 256  # descriptors kept for the database, logs, containers and upstream connections
class _Throttled:
    """Counts events and logs them at most once per LOG_INTERVAL."""

    def __init__(self, message: str) -> None:
        self._message, self._count, self._last = message, 0, float("-inf")

    def add(self, n: int = 1) -> None:
        self._count += n
        now = time.monotonic()
        if self._count and now - self._last >= LOG_INTERVAL:
            log.warning(self._message, self._count)
            self._count, self._last = 0, now


class Connection(web.RequestHandler):
    """aiohttp's per-connection protocol, with the deadline the guard enforces."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, *, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self.guard = guard
        # Kept: asyncio.get_running_loop() costs a getpid() system call per request on CPython 3.11.
        self.loop = loop
        self.deadline: float | None = None  # when the client must have sent what we wait for
        self.busy = False  # a request's headers have arrived and its response is not finished
        self.body: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.deadline = self.loop.time() + self.guard.header_timeout
        self.guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self.deadline is None:  # the first byte of the next request
            self.deadline = self.loop.time() + self.guard.header_timeout
        super().data_received(data)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp cannot parse (a NUL or control character in a header value, a bad
        request line) answers as an AWS error boto3 reads, not as aiohttp's plain text, which
        botocore would show with the error code "400"."""
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        # aiohttp's message quotes the offending line, then points at the character with "^".
        lines = [line.strip() for line in (exc.message or str(exc)).splitlines()]
        problem = " ".join(line for line in lines if line and line != "^")
        log.info("malformed request from %s: %s", request.remote, problem)
        resp = runtime_response(errors.runtime_validation(f"Malformed HTTP request: {problem}", status=exc.code))
        resp.force_close()
        return resp


class ConnectionGuard:
    """The open connections of one server, oldest first, and the sweep over their deadlines."""

    def __init__(self, max_connections: int, header_timeout: float, body_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self._open: dict[Connection, None] = {}  # insertion order: oldest first
        self._sweeper: asyncio.TimerHandle | None = None
        self._slow = _Throttled("closed %d client connection(s) that were too slow to send their request")
        self._refused = _Throttled(f"refused %d client connection(s): all {max_connections} allowed are busy")

    def protocol_factory(self, server: web.Server, **handler_args: Any) -> Callable[[], Connection]:
        loop = asyncio.get_running_loop()
        return lambda: Connection(server, self, loop=loop, **handler_args)

    def opened(self, conn: Connection) -> None:
        if len(self._open) >= self.max_connections:
            waiting = next((c for c in self._open if not c.busy), None)
            if waiting is None:
                self._refused.add()
                conn.force_close()
                return
            self._slow.add()
            waiting.force_close()
            self._open.pop(waiting, None)
        self._open[conn] = None
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_INTERVAL, self._sweep)

    def closed(self, conn: Connection) -> None:
        self._open.pop(conn, None)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        late = []
        for conn in self._open:
            if conn.deadline is None or now < conn.deadline:
                continue
            if conn.body is not None and conn.body.is_eof():
                conn.deadline = None  # the body is in; the handler is working on it
            else:
                late.append(conn)
        for conn in late:
            conn.force_close()
            self._open.pop(conn, None)
        if late:
            self._slow.add(len(late))
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_INTERVAL, self._sweep) if self._open else None

    def middleware(self) -> Middleware:
        """Marks a connection busy while its request is handled (headers in: the body deadline
        starts), and answers a client that went away quietly instead of with a traceback."""

        @web.middleware
        async def connection_state(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = request.protocol
            if isinstance(conn, Connection):
                conn.busy, conn.body = True, request.content
                conn.deadline = None if request.content.is_eof() else conn.loop.time() + self.body_timeout
            try:
                return await handler(request)
            except ConnectionError as exc:
                if request.transport is not None and not request.transport.is_closing():
                    raise  # not the client's connection: a failure worth its traceback
                log.debug("client went away during %s %s: %s", request.method, request.path, exc)
                return web.Response(status=400)  # never written: aiohttp drops it quietly
            finally:
                if isinstance(conn, Connection):
                    conn.busy, conn.body, conn.deadline = False, None, None

        return connection_state


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the connections that fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(soft - _FD_RESERVE, soft // 2)


def quiet_fd_exhaustion(loop: asyncio.AbstractEventLoop) -> None:
    """Report "Too many open files" from the accept loop once per LOG_INTERVAL, not per attempt."""
    exhausted = _Throttled("could not accept %d connection(s): too many open files")

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            exhausted.add()
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

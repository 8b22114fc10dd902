"""HTTP/1.1 to containers: the one exchange the gateway makes, on keep-alive connections.

The gateway only ever sends ``POST <path>`` with a body to a container and relays the answer.
aiohttp's general-purpose client spent more CPU per invocation than the container took to serve
it (see ``docs/benchmarks.md``), so this is a small client for exactly that: one asyncio Protocol
per connection, the request written with one ``transport.write``, the response parsed by
``httptools`` (llhttp, the parser of Node.js and uvicorn), and idle connections kept per
container, most recent first.

Pooling rules:

- A connection is reused only when its response was read to the end and neither side asked to
  close. Idle connections are closed after ``idle_timeout`` seconds, and at most
  ``max_idle`` are kept per container.
- A container may close a kept-alive connection just as a request goes out on it (its own idle
  timeout). When a *reused* connection closes before a single byte of the response arrived, the
  request is sent once more on a new connection — the container never answered, so it did not
  see the request or dropped it unprocessed. A request whose body is a stream cannot be replayed
  and gets no second attempt; no request ever gets a third.

Every failure — refused, reset, a response that is not HTTP/1.x — is ``UpstreamError``;
``UpstreamNotSent`` among them when nothing of the request left the gateway, so that trying
another container cannot run the model twice, and ``UpstreamUnanswered`` when the request went
out but the connection ended before any byte of a response (the container died, or the gateway
``abandon``-ed the container because its instance left rotation). The deadline of an exchange is
``asyncio.TimeoutError``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import httptools
from multidict import CIMultiDict

if TYPE_CHECKING:
    from aiohttp import StreamReader

# Limit on what a container may send before its body starts.
MAX_HEAD = 64 * 1024
# Reading from a container pauses while this much of its body waits for the client.
_HIGH_WATER = 1024 * 1024
# Below uvicorn's 5 s keep-alive timeout, the shortest among common model servers, so that the
# container rarely closes a connection the gateway is about to reuse.
IDLE_TIMEOUT = 4.0
MAX_IDLE = 32


class UpstreamError(Exception):
    """The container could not be reached, or did not answer with valid HTTP/1.x."""


class UpstreamNotSent(UpstreamError):
    """Nothing of the request was sent (the connection was refused, or closed before the
    request went out): another container can be tried without running the model twice."""


class UpstreamUnanswered(UpstreamError):
    """The connection ended after the request was written and before any byte of a response."""


class UpstreamResponse:
    """Status, headers and body of one container response; ``release()`` it when done."""

    __slots__ = ("_conn", "content_length", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDict[str], content_length: int | None) -> None:
        self.status = status
        self.headers = headers
        self.content_length = content_length
        self._conn = conn

    async def read(self) -> bytes:
        """The whole body."""
        conn = self._conn
        while not conn.body_done:
            await conn.wait_body()
        return conn.take_body()

    async def read_at_most(self, limit: int) -> bytes:
        """The first ``limit`` bytes of the body, or all of it if shorter."""
        conn = self._conn
        while not conn.body_done and conn.buffered < limit:
            await conn.wait_body()
        return conn.take_body()[:limit]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece, as it arrives."""
        conn = self._conn
        while True:
            if conn.buffered:
                yield conn.take_body()
            elif conn.body_done:
                return
            else:
                await conn.wait_body()

    async def iter_pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives, without joining what arrived together: each chunk of a chunked
        body is yielded on its own (a large one possibly in parts), so a relay can keep the
        container's framing (response streaming turns each chunk into an event)."""
        conn = self._conn
        while True:
            if conn.buffered:
                for piece in conn.take_pieces():
                    yield piece
            elif conn.body_done:
                return
            else:
                await conn.wait_body()

    def release(self) -> None:
        """Give the connection back for reuse, or close it if the body was not read to the end."""
        self._conn.finish()


class Upstream:
    """Keep-alive connection pools, one per container address."""

    def __init__(self, timeout: float, idle_timeout: float = IDLE_TIMEOUT, max_idle: int = MAX_IDLE) -> None:
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle
        # Per container, oldest first: reuse pops the right end, eviction the left.
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        # Every open connection per container, busy or idle: ``abandon`` ends them.
        self._open: dict[tuple[str, int], set[_Connection]] = {}

    async def post(
        self, host: str, port: int, path: str, headers: Iterable[tuple[str, str]], body: bytes | StreamReader
    ) -> UpstreamResponse:
        """Send ``POST path`` to ``host:port`` and return once the response head has arrived.

        ``body`` is bytes (sent with Content-Length) or a stream (sent chunked). The deadline
        covers connecting, sending and reading the body; past it, ``asyncio.TimeoutError``.
        """
        if self._closed:
            raise UpstreamNotSent("the gateway is shutting down")
        key = (host, port)
        head = [f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers]
        stream: StreamReader | None = None
        if isinstance(body, (bytes, bytearray)):
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
            request = "".join(head).encode("utf-8", "surrogateescape") + body
        else:
            head.append("Transfer-Encoding: chunked\r\n\r\n")
            request, stream = "".join(head).encode("utf-8", "surrogateescape"), body
        conn = self._reusable(key)
        # A pooled connection knows its loop: asyncio.get_running_loop() costs a getpid().
        loop = conn.loop if conn is not None else asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        if conn is None:
            conn = await self._connect(loop, key, deadline)
            return await conn.exchange(request, stream, deadline)
        try:
            return await conn.exchange(request, stream, deadline)
        except UpstreamUnanswered:
            if stream is not None:
                raise
        # Closed by the container as the request went out: once more, on a new connection.
        try:
            conn = await self._connect(loop, key, deadline)
        except UpstreamNotSent as exc:
            # The first attempt did go out, unanswered, and the container is now gone.
            raise UpstreamUnanswered(str(exc)) from None
        return await conn.exchange(request, stream, deadline)

    def _reusable(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable:
                return conn
            conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int], deadline: float) -> _Connection:
        host, port = key
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, key), host, port), deadline - loop.time()
            )
        except OSError as exc:
            raise UpstreamNotSent(f"Cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        self._open.setdefault(key, set()).add(conn)
        return conn

    def abandon(self, host: str, port: int) -> None:
        """End every connection to ``host:port``: its instance left rotation as dead. Exchanges
        still waiting for the response fail with ``UpstreamUnanswered``, others with
        ``UpstreamError``."""
        for conn in list(self._open.pop((host, port), ())):
            conn.abandon()

    def put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        elif len(idle) >= self._max_idle:
            idle.popleft().close()
        conn.idle_since = conn.loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_at(conn.idle_since + self._idle_timeout, self._sweep, conn.loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections idle for ``idle_timeout``; come back when the next one will be."""
        expired = loop.time() - self._idle_timeout
        next_due: float | None = None
        for key, idle in list(self._idle.items()):
            while idle and idle[0].idle_since <= expired:
                idle.popleft().close()
            if not idle:
                del self._idle[key]
            elif next_due is None or idle[0].idle_since < next_due:
                next_due = idle[0].idle_since
        self._sweeper = None if next_due is None else loop.call_at(next_due + self._idle_timeout, self._sweep, loop)

    def forget(self, conn: _Connection) -> None:
        conns = self._open.get(conn.key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._open[conn.key]
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class _Connection(asyncio.Protocol):
    """One TCP connection to a container; the parser's callbacks fill in the response on it."""

    def __init__(self, pool: Upstream, key: tuple[str, int]) -> None:
        self.key = key
        self.idle_since = 0.0
        # Kept, not looked up per call: each get_running_loop() costs a getpid() system call.
        self.loop = asyncio.get_running_loop()
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._busy = False  # an exchange is under way: a request was sent, its response not yet read
        self._received = 0  # bytes of the response so far, counted until its head is complete
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._until_close = False  # the body ends when the container closes the connection
        self._informational = False  # a 1xx response is being skipped
        self._body: deque[bytes] = deque()
        self.buffered = 0
        self.body_done = False
        self._keep_alive = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._response: UpstreamResponse | None = None
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's and uvloop's TCP transports both set TCP_NODELAY: no Nagle delay on requests.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.body_done:
            self._fail(UpstreamError("the container sent more than its response"))
            return
        if self._response is None:
            self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._fail(exc.__context__ or UpstreamError(str(exc)))
            return
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(UpstreamError(f"the container did not answer with valid HTTP/1.x: {exc}"))
            return
        if self._response is None and self._received > MAX_HEAD:
            self._fail(UpstreamError("the container's response head is too long"))
        elif self.buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._busy and not self.body_done:
            if self._until_close:
                self.body_done = True
                self._wake()
            elif not self._received:
                self._fail(UpstreamUnanswered("the container closed the connection before it answered"))
            else:
                detail = f": {exc}" if exc else ""
                self._fail(UpstreamError(f"the container closed the connection before it finished answering{detail}"))
        self._pool.forget(self)

    # --- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is None:  # not a trailer of a chunked body
            self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.body_done:
            raise UpstreamError("the container sent more than its response")
        status = self._parser.get_status_code()
        raw, self._raw_headers = self._raw_headers, []
        if status < 200:  # 100 Continue and the like: the real response follows
            self._informational = True
            return
        headers: CIMultiDict[str] = CIMultiDict(
            [(name.decode("latin-1"), value.decode("utf-8", "surrogateescape")) for name, value in raw]
        )
        length = headers.get("Content-Length")
        content_length = int(length) if length is not None and status not in (204, 304) else None
        self._until_close = (
            content_length is None and status not in (204, 304)
            and "chunked" not in headers.get("Transfer-Encoding", "").lower()
        )
        self._response = UpstreamResponse(self, status, headers, content_length)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._keep_alive = self._parser.should_keep_alive()
        self.body_done = True
        self._wake()

    # --- one exchange ---------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return not self._busy and self._open

    async def exchange(self, request: bytes, stream: StreamReader | None, deadline: float) -> UpstreamResponse:
        assert self._transport is not None and not self._busy
        if not self._open:
            # Closed between connecting and now (e.g. a proxy in front of a dead container accepts,
            # then hangs up): nothing would ever wake a wait for the response.
            self.close()
            raise UpstreamNotSent("the container closed the connection before the request was sent")
        self._busy, self._received, self._until_close = True, 0, False
        self._response, self._error, self.body_done, self._keep_alive = None, None, False, False
        self._timer = self.loop.call_at(deadline, self._time_out)
        transport = self._transport
        try:
            transport.write(request)
            if stream is not None:
                async for chunk in stream.iter_any():
                    if self._error is not None:
                        break
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                transport.write(b"0\r\n\r\n")
            while self._response is None:
                await self.wait_body()
        except BaseException:
            # Failed, timed out, or cancelled (the client went away): this connection is spent.
            self._finish_failed()
            raise
        return self._response

    async def wait_body(self) -> None:
        """Wait for more of the response (or its end, or a failure)."""
        if self._error is not None:
            self._finish_failed()
            raise self._error
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            self._finish_failed()
            raise self._error

    def take_body(self) -> bytes:
        data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self.buffered = 0
        return data

    def take_pieces(self) -> list[bytes]:
        pieces = list(self._body)
        self._body.clear()
        self.buffered = 0
        return pieces

    def finish(self) -> None:
        """End of the exchange: reuse the connection if the response was read to its end."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reuse = self.body_done and self._keep_alive and not self.buffered and self._open
        self._busy, self._response = False, None
        self._body.clear()
        self.buffered = 0
        if reuse:
            self._pool.put_back(self)
        else:
            self.close()

    @property
    def _open(self) -> bool:
        return not self._lost and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        self._lost = True
        if self._transport is not None:
            self._transport.close()

    def _finish_failed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._busy = False
        self.close()

    def abandon(self) -> None:
        if self._busy and not self.body_done:
            if self._response is None and not self._received:
                self._fail(UpstreamUnanswered("the instance left rotation before its container answered"))
            else:
                self._fail(UpstreamError("the instance left rotation while its container was answering"))
        else:
            self.close()

    def _time_out(self) -> None:
        self._timer = None
        self._fail(asyncio.TimeoutError())

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        if self._transport is not None:
            self._transport.abort()
        self._lost = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

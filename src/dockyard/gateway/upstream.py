"""HTTP/1.1 to containers: the one exchange the gateway makes, on keep-alive connections.

The gateway only ever sends ``POST <path>`` with a body to a container and relays the answer.
aiohttp's general-purpose client spent more CPU per invocation than the container took to serve
it (see ``docs/benchmarks.md``), so this is a small client for exactly that: one asyncio Protocol
per connection, the request written with one ``transport.write``, the response head parsed in one
pass, the body framed by ``Content-Length``, the chunked transfer coding or the end of the
connection, and idle connections reused per container, most recent first.

A connection is reused only when its response was read to the end and neither side asked to
close. Every failure — refused, reset, a response that is not HTTP/1.x — is ``UpstreamError``;
the deadline of an exchange is ``asyncio.TimeoutError``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from multidict import CIMultiDict

if TYPE_CHECKING:
    from aiohttp import StreamReader

# Limits on what a container may send before its body starts.
MAX_HEAD = 64 * 1024
# Reading from a container pauses while this much of its body waits for the client.
_HIGH_WATER = 1024 * 1024


class UpstreamError(Exception):
    """The container could not be reached, or did not answer with valid HTTP/1.x."""


class ConnectError(UpstreamError):
    """No connection could be made (refused, unreachable): nothing of the request was sent."""


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

    def release(self) -> None:
        """Give the connection back for reuse, or close it if the body was not read to the end."""
        self._conn.finish()


class Upstream:
    """Keep-alive connection pools, one per container address."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._closed = False

    async def post(
        self, host: str, port: int, path: str, headers: Iterable[tuple[str, str]], body: bytes | StreamReader
    ) -> UpstreamResponse:
        """Send ``POST path`` to ``host:port`` and return once the response head has arrived.

        ``body`` is bytes (sent with Content-Length) or a stream (sent chunked). The deadline
        covers connecting, sending and reading the body; past it, ``asyncio.TimeoutError``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        conn = await self._acquire(loop, host, port)
        head = [f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers]
        if isinstance(body, (bytes, bytearray)):
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
            request = "".join(head).encode("utf-8", "surrogateescape") + body
            return await conn.exchange(request, None, deadline)
        head.append("Transfer-Encoding: chunked\r\n\r\n")
        return await conn.exchange("".join(head).encode("utf-8", "surrogateescape"), body, deadline)

    async def _acquire(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> _Connection:
        if self._closed:
            raise UpstreamError("the gateway is shutting down")
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            if conn.reusable:
                return conn
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, (host, port)), host, port), self._timeout
            )
        except OSError as exc:
            raise ConnectError(f"Cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        return conn

    def put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


# States of a connection's response parser.
_IDLE, _HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(9)


class _Connection(asyncio.Protocol):
    """One TCP connection to a container and the parser of the response on it."""

    def __init__(self, pool: Upstream, key: tuple[str, int]) -> None:
        self.key = key
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._state = _IDLE
        self._buffer = b""
        self._remaining = 0  # body bytes still expected (Content-Length, or current chunk)
        self._body: deque[bytes] = deque()
        self.buffered = 0
        self._keep_alive = True
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._response: UpstreamResponse | None = None
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._state == _IDLE:
            self._fail(UpstreamError("the container sent data without a request"))
            return
        self._buffer = self._buffer + data if self._buffer else data
        try:
            self._parse()
        except UpstreamError as exc:
            self._fail(exc)
            return
        if self.buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            self._keep_alive = False
            self._wake()
        elif self._state != _IDLE and self._state != _DONE:
            detail = f": {exc}" if exc else ""
            self._fail(UpstreamError(f"the container closed the connection before it finished answering{detail}"))
        self._pool.forget(self)

    # --- one exchange ---------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return self._state == _IDLE and self._open

    async def exchange(self, request: bytes, stream: StreamReader | None, deadline: float) -> UpstreamResponse:
        assert self._transport is not None and self._state == _IDLE
        if not self._open:
            # Closed between connecting and now (e.g. a proxy in front of a dead container accepts,
            # then hangs up): nothing would ever wake a wait for the response.
            self.close()
            raise UpstreamError("the container closed the connection before the request was sent")
        loop = asyncio.get_running_loop()
        self._state, self._response, self._error, self._keep_alive = _HEAD, None, None, True
        self._timer = loop.call_at(deadline, self._time_out)
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
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            self._finish_failed()
            raise self._error

    @property
    def body_done(self) -> bool:
        return self._state == _DONE

    def take_body(self) -> bytes:
        data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self.buffered = 0
        return data

    def finish(self) -> None:
        """End of the exchange: reuse the connection if the response was read to its end."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reuse = self._state == _DONE and self._keep_alive and not self.buffered and not self._buffer and self._open
        self._state, self._response = _IDLE, None
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
        self._state = _IDLE
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

    # --- the response parser ---------------------------------------------------------------------

    def _parse(self) -> None:
        while self._buffer:
            state = self._state
            if state == _HEAD:
                if not self._parse_head():
                    return
            elif state == _LENGTH:
                self._take(self._remaining, _DONE)
            elif state == _CHUNK_SIZE:
                line = self._line()
                if line is None:
                    return
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise UpstreamError(f"invalid chunk size {line[:40]!r} from the container") from None
                self._state = _CHUNK_DATA if size else _TRAILERS
                self._remaining = size
            elif state == _CHUNK_DATA:
                self._take(self._remaining, _CHUNK_END)
            elif state == _CHUNK_END:
                line = self._line()
                if line is None:
                    return
                if line:
                    raise UpstreamError("chunk data from the container was longer than its size")
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                line = self._line()
                if line is None:
                    return
                if not line:
                    self._state = _DONE
                    self._wake()
            elif state == _UNTIL_CLOSE:
                self._body.append(self._buffer)
                self.buffered += len(self._buffer)
                self._buffer = b""
                self._wake()
            else:  # _DONE: bytes after the response
                raise UpstreamError("the container sent more than its response")

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise UpstreamError("a line of the container's response is too long")
            return None
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line

    def _take(self, wanted: int, then: int) -> None:
        piece = self._buffer[:wanted] if len(self._buffer) > wanted else self._buffer
        self._buffer = self._buffer[len(piece):]
        if piece:
            self._body.append(piece)
            self.buffered += len(piece)
        self._remaining -= len(piece)
        if not self._remaining:
            self._state = then
        if then == _DONE or piece:
            self._wake()

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise UpstreamError("the container's response head is too long")
            return False
        raw, self._buffer = self._buffer[:end], self._buffer[end + 4:]
        if raw.count(b"\r") != raw.count(b"\n"):  # a bare CR or LF: not HTTP
            raise UpstreamError("the container's response head has bare line breaks")
        lines = raw.decode("utf-8", "surrogateescape").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or rest[3:4] not in ("", " "):
            raise UpstreamError(f"the container did not answer with HTTP/1.x: {lines[0][:80]!r}")
        status = int(code)
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise UpstreamError(f"invalid header line from the container: {line[:80]!r}")
            headers.add(name, value.strip(" \t"))
        if 100 <= status < 200:  # 100 Continue and the like: the real response follows
            return True
        connection = headers.get("Connection", "").lower()
        self._keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        length = None
        if status in (204, 304):
            self._state = _DONE
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif "Content-Length" in headers:
            value = headers["Content-Length"]
            if not value.isdigit():
                raise UpstreamError(f"invalid Content-Length {value[:40]!r} from the container")
            length = self._remaining = int(value)
            self._state = _LENGTH if length else _DONE
        else:
            self._state = _UNTIL_CLOSE
            self._keep_alive = False
        self._response = UpstreamResponse(self, status, headers, length)
        self._wake()
        return True

"""The gateway's HTTP/1.1 client against a raw TCP server that answers exactly the bytes given:
every way a container can frame a response, connection reuse, and every way it can fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from dockyard.gateway.upstream import Upstream, UpstreamError

Answer = Callable[[bytes], bytes | None]


class RawServer:
    """Reads one request at a time (head + Content-Length or chunked body) and writes back
    ``answer(request)``; ``None`` closes the connection without answering."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer, self.close_after = answer, close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"chunked" in head.lower():
                    body = b""
                    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                        body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")
                else:
                    length = next(
                        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
                    )
                    body = await reader.readexactly(length)
                self.requests.append(head + body)
                reply = self.answer(head + body)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        writer.close()


def run(coro):
    return asyncio.run(coro)


async def post(server: RawServer, body: bytes = b"[1]", upstream: Upstream | None = None, timeout: float = 5.0):
    client = upstream or Upstream(timeout)
    resp = await client.post("127.0.0.1", server.port, "/invocations", [("Content-Type", "application/json")], body)
    try:
        return resp.status, dict(resp.headers), resp.content_length, await resp.read()
    finally:
        resp.release()
        if upstream is None:
            await client.close()


def fixed(status_line: str, headers: str, body: bytes) -> Answer:
    return lambda _: f"{status_line}\r\n{headers}\r\n".encode() + body


def test_request_is_one_post_with_host_headers_and_length():
    async def main():
        async with RawServer(fixed("HTTP/1.1 200 OK", "Content-Length: 2\r\n", b"ok")) as server:
            assert await post(server, b"[1,2]") == (200, {"Content-Length": "2"}, 2, b"ok")
            assert server.requests == [
                f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
                "Content-Length: 5\r\n\r\n[1,2]".encode()
            ]

    run(main())


def test_chunked_response_is_reassembled():
    chunks = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"

    async def main():
        async with RawServer(fixed("HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\nContent-Type: text/csv\r\n", chunks)) as server:
            status, headers, length, body = await post(server)
            assert (status, headers["Content-Type"], length, body) == (200, "text/csv", None, b"hello world")

    run(main())


def test_body_until_close_and_http_1_0():
    async def main():
        async with RawServer(fixed("HTTP/1.0 200 OK", "", b"all of it"), close_after=True) as server:
            assert (await post(server))[3] == b"all of it"

    run(main())


def test_informational_response_is_skipped_and_empty_statuses_have_no_body():
    async def main():
        answer = fixed("HTTP/1.1 100 Continue", "", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
        async with RawServer(answer) as server:
            assert await post(server) == (204, {"X-A": "1"}, None, b"")

    run(main())


def test_connections_are_reused_until_the_container_says_close():
    async def main():
        upstream = Upstream(5.0)
        async with RawServer(fixed("HTTP/1.1 200 OK", "Content-Length: 1\r\n", b"a")) as server:
            for _ in range(3):
                await post(server, upstream=upstream)
            assert server.connections == 1
        async with RawServer(fixed("HTTP/1.1 200 OK", "Connection: close\r\nContent-Length: 1\r\n", b"a"), close_after=True) as server:
            for _ in range(2):
                await post(server, upstream=upstream)
            assert server.connections == 2
        await upstream.close()

    run(main())


def test_a_connection_the_container_closed_while_idle_is_not_reused():
    async def main():
        upstream = Upstream(5.0)
        async with RawServer(fixed("HTTP/1.1 200 OK", "Content-Length: 1\r\n", b"a"), close_after=True) as server:
            await post(server, upstream=upstream)
            await asyncio.sleep(0.05)  # the server's FIN arrives
            await post(server, upstream=upstream)
            assert server.connections == 2
        await upstream.close()

    run(main())


def test_unread_body_closes_the_connection_and_read_at_most_stops_early():
    async def main():
        upstream = Upstream(5.0)
        # Only the first 200 of 10000 bytes ever come: the connection cannot be reused.
        partial = fixed("HTTP/1.1 500 Oops", "Content-Length: 10000\r\n", b"e" * 200)
        async with RawServer(partial) as server:
            resp = await upstream.post("127.0.0.1", server.port, "/invocations", [], b"")
            assert resp.status == 500
            assert await resp.read_at_most(100) == b"e" * 100
            resp.release()
            resp = await upstream.post("127.0.0.1", server.port, "/invocations", [], b"")
            resp.release()
            assert server.connections == 2
        await upstream.close()

    run(main())


def test_large_body_streams_in_pieces():
    big = bytes(range(256)) * 40000  # 10 MB

    async def main():
        async with RawServer(fixed("HTTP/1.1 200 OK", f"Content-Length: {len(big)}\r\n", big)) as server:
            upstream = Upstream(30.0)
            resp = await upstream.post("127.0.0.1", server.port, "/invocations", [], b"")
            pieces = [piece async for piece in resp.iter_chunks()]
            resp.release()
            await upstream.close()
            assert b"".join(pieces) == big and len(pieces) > 1

    run(main())


def test_streamed_request_body_is_sent_chunked():
    async def main():
        stream = aiohttp.StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())
        for piece in (b"abc", b"defg"):
            stream.feed_data(piece)
        stream.feed_eof()
        async with RawServer(fixed("HTTP/1.1 200 OK", "Content-Length: 0\r\n", b"")) as server:
            upstream = Upstream(5.0)
            resp = await upstream.post("127.0.0.1", server.port, "/invocations", [], stream)
            resp.release()
            await upstream.close()
            (request,) = server.requests
            assert b"Transfer-Encoding: chunked" in request and request.endswith(b"abcdefg")

    run(main())


class _Protocol:
    """What aiohttp's StreamReader needs of its protocol when fed by hand."""

    _reading_paused = False

    def pause_reading(self, **_: object) -> None: ...
    def resume_reading(self, **_: object) -> None: ...


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\nb\r\nContent-Length: 1\r\n\r\na",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
])
def test_invalid_responses_are_upstream_errors(reply):
    async def main():
        async with RawServer(lambda _: reply) as server:
            with pytest.raises(UpstreamError):
                await post(server)

    run(main())


def test_closed_before_answering_refused_and_timed_out():
    async def main():
        async with RawServer(lambda _: None) as server:
            with pytest.raises(UpstreamError, match="closed the connection"):
                await post(server)
        async with RawServer(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", close_after=True) as server:
            with pytest.raises(UpstreamError, match="closed the connection"):
                await post(server)
        async with RawServer(lambda _: b"") as server:
            with pytest.raises(asyncio.TimeoutError):
                await post(server, timeout=0.2)
        with pytest.raises(UpstreamError, match="Cannot connect"):
            await post(server)

    run(main())


def test_a_server_that_hangs_up_right_after_accepting_fails_fast() -> None:
    """Like docker-proxy in front of a dead container: it accepts, then closes at once. The
    request must fail at once, not wait for the invocation timeout."""

    async def main() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream(timeout=30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for _ in range(3):  # whether the close arrives before or after the request is written
                with pytest.raises(UpstreamError):
                    await upstream.post("127.0.0.1", port, "/invocations", [], b"x")
                await asyncio.sleep(0.05)
        finally:
            await upstream.close()
            server.close()
        assert loop.time() - started < 10, "a closed connection was waited on until the timeout"

    asyncio.run(main())

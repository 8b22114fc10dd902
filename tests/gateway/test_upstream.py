"""The gateway's HTTP/1.1 client against a raw TCP server that answers exactly the bytes given:
every way a container can frame a response, connection reuse, and every way it can fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from dockyard.gateway.upstream import Upstream, UpstreamError, UpstreamNotSent

Answer = Callable[[bytes], bytes | None]


class RawServer:
    """Reads one request at a time (head + Content-Length or chunked body) and writes back
    ``answer(request)``; ``None`` closes the connection without answering. With
    ``requests_per_connection``, a connection that has served that many requests is closed as
    the next request arrives, unread — a server whose idle timeout fired just as it was reused."""

    def __init__(self, answer: Answer, close_after: bool = False, requests_per_connection: int | None = None) -> None:
        self.answer, self.close_after, self.requests_per_connection = answer, close_after, requests_per_connection
        self.requests: list[bytes] = []
        self.connections = 0
        self.hung_up = 0  # requests the server closed the connection on, unread
        self.closed_by_client = 0  # connections the client closed between requests
        self.client_closed = asyncio.Event()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                if served == self.requests_per_connection:
                    if await reader.read(1):
                        self.hung_up += 1
                    break
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:
                        self.closed_by_client += 1
                        self.client_closed.set()
                    break
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
                served += 1
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


@pytest.mark.parametrize("closes", ["after answering", "as the next request arrives"])
def test_a_connection_the_container_closed_while_idle_is_replaced_and_the_request_reaches_it_once(closes):
    """Whether the container's FIN is seen before the next request, or only once the request
    went out on the dead connection (then it is sent once more, on a new connection), every
    request reaches the container exactly once."""
    options = {"close_after": True} if closes == "after answering" else {"requests_per_connection": 1}

    async def main():
        upstream = Upstream(5.0)
        async with RawServer(fixed("HTTP/1.1 200 OK", "Content-Length: 2\r\n", b"ok"), **options) as server:
            for _ in range(3):
                assert (await post(server, b"[7]", upstream=upstream))[3] == b"ok"
            assert (server.connections, server.hung_up) == (3, 0 if closes == "after answering" else 2)
            assert [r.endswith(b"[7]") for r in server.requests] == [True] * 3
        await upstream.close()

    run(main())


def test_the_retry_is_only_one_and_only_for_a_reused_connection():
    answers = iter([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"])

    async def main():
        upstream = Upstream(5.0)
        # The first request is answered; every later one is read and then hung up on.
        async with RawServer(lambda _: next(answers, None)) as server:
            await post(server, upstream=upstream)
            with pytest.raises(UpstreamError, match="closed the connection before it answered"):
                await post(server, upstream=upstream)
            assert (server.connections, len(server.requests)) == (2, 3)
            # A new connection that closes unanswered is not tried again.
            with pytest.raises(UpstreamError, match="closed the connection before it answered"):
                await post(server, upstream=upstream)
            assert (server.connections, len(server.requests)) == (3, 4)
        await upstream.close()

    run(main())


def test_a_refused_retry_is_not_reported_as_nothing_sent():
    """The first attempt did go out before the container went away: that failure must not be
    taken for one that is safe to send to another container."""

    async def main():
        async def serve_once_then_go_away(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
            await reader.read(1)  # the next request: stop listening, and hang up on it
            listener.close()
            writer.close()

        listener = await asyncio.start_server(serve_once_then_go_away, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        upstream = Upstream(5.0)
        resp = await upstream.post("127.0.0.1", port, "/invocations", [], b"")
        assert await resp.read() == b"a"
        resp.release()
        with pytest.raises(UpstreamError, match="Cannot connect") as failure:
            await upstream.post("127.0.0.1", port, "/invocations", [], b"")
        assert not isinstance(failure.value, UpstreamNotSent)
        await upstream.close()

    run(main())


def test_a_container_closing_mid_response_on_a_reused_connection_is_not_retried():
    async def main():
        upstream = Upstream(5.0)

        def answer(_: bytes) -> bytes:
            if len(server.requests) == 1:
                return b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
            server.close_after = True  # 2 of 5 body bytes, then the container is gone
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"

        async with RawServer(answer) as server:
            await post(server, upstream=upstream)
            with pytest.raises(UpstreamError, match="before it finished answering") as failure:
                await post(server, upstream=upstream)
            assert not isinstance(failure.value, UpstreamNotSent)
            assert (server.connections, len(server.requests)) == (1, 2)
        await upstream.close()

    run(main())


@pytest.mark.parametrize("options, at_once", [({"idle_timeout": 0.01}, 1), ({"max_idle": 2}, 3)], ids=["idle timeout", "max idle"])
def test_idle_connections_are_evicted(options, at_once):
    """Past the idle timeout, or beyond ``max_idle`` per container, the gateway closes a kept
    connection (the container sees it go) and the next request needs a new one."""

    async def main():
        upstream = Upstream(5.0, **options)
        async with RawServer(fixed("HTTP/1.1 200 OK", "Content-Length: 1\r\n", b"a")) as server:
            await asyncio.gather(*(post(server, upstream=upstream) for _ in range(at_once)))
            await asyncio.wait_for(server.client_closed.wait(), 10)
            assert (server.connections, server.closed_by_client) == (at_once, 1)
            await asyncio.gather(*(post(server, upstream=upstream) for _ in range(at_once)))
            assert server.connections == at_once + 1  # the kept ones reused, one new
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
        with pytest.raises(UpstreamNotSent, match="Cannot connect"):
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

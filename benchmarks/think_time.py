"""What a client's pause between requests does to the latency the gateway adds: a measurement,
not a dockyard feature (issue 18 §3, "find why the added latency is larger with a Python client").

One client on one keep-alive connection sends InvokeEndpoint as botocore does (head and body in
two ``send`` calls, ``TCP_NODELAY``), waits for the whole answer, then *thinks* — spins for
``gap`` µs, as a Python client spends time between requests — and sends the next one. Three
targets take the same requests, interleaved per round:

- the container, straight to its port;
- a byte relay in front of it (uvloop, no HTTP parsing: what one more hop costs by itself);
- the gateway, ``dockyard serve``.

Before them it times the machine itself: a one-byte pipe round trip between two processes on
the same CPU and on different CPUs, with the same think times — what a wake-up across CPUs costs
here, whatever the server.

With ``--pin`` the processes are also pinned (``sched_setaffinity``): the gateway on CPU 0, the
container (with its workers) and the client on CPU 1, to show what placement does.

``python -m benchmarks.think_time [--gaps 0,100,300] [--requests 2000] [--rounds 3] [--pin]``
prints a Markdown table of p50 latencies and what the relay and the gateway add to the direct
p50, medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from benchmarks import fixtures, procs
from benchmarks.markdown import table
from benchmarks.stack import DockyardStack
from dockyard.runtime.ports import free_port


def relay(port: int, upstream: int) -> None:
    """Serve ``port``: each connection is spliced, byte for byte, to a connection to ``upstream``."""

    class Back(asyncio.Protocol):
        def __init__(self, front: asyncio.Transport) -> None:
            self.front = front

        def data_received(self, data: bytes) -> None:
            self.front.write(data)

    class Front(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's
            self.back: asyncio.Transport | None = None
            self.early = bytearray()
            asyncio.get_running_loop().create_task(self.connect())

        async def connect(self) -> None:
            self.back, _ = await asyncio.get_running_loop().create_connection(
                lambda: Back(self.transport), "127.0.0.1", upstream)
            self.back.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.back.write(bytes(self.early))

        def data_received(self, data: bytes) -> None:
            if self.back is None:
                self.early += data
            else:
                self.back.write(data)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Front, "127.0.0.1", port)
        await server.serve_forever()

    import uvloop

    uvloop.run(main())


def p50_us(port: int, path: str, gap_us: float, requests: int) -> float:
    """The median latency, µs, of ``requests`` sequential invocations with ``gap_us`` of think time."""
    body = fixtures.SAGEMAKER_BODY
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\n"
        f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fixtures.JSON_HEADERS) + "\r\n"
    ).encode()
    latencies = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            until = time.perf_counter() + gap_us / 1e6
            while time.perf_counter() < until:
                pass
            start = time.perf_counter()
            sock.sendall(head)
            sock.sendall(body)
            answer = sock.recv(65536)
            while not _complete(answer):
                answer += sock.recv(65536)
            latencies.append(time.perf_counter() - start)
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"port {port} answered {answer[:200]!r}")
    return statistics.median(latencies) * 1e6


def _complete(answer: bytes) -> bool:
    head, sep, rest = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value)
    raise RuntimeError("an answer without Content-Length")


def round_trip_us(same_cpu: bool, gap_us: float, trips: int = 3000) -> float:
    """The median round trip, µs, of one byte through two pipes to a child process and back, the
    child on this process's CPU or on another (the first two CPUs)."""
    there_r, there_w = os.pipe()
    back_r, back_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.sched_setaffinity(0, {1 if same_cpu else 0})
        while os.read(there_r, 1) == b"p":
            os.write(back_w, b"p")
        os._exit(0)
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    latencies = []
    try:
        for _ in range(trips):
            until = time.perf_counter() + gap_us / 1e6
            while time.perf_counter() < until:
                pass
            start = time.perf_counter()
            os.write(there_w, b"p")
            os.read(back_r, 1)
            latencies.append(time.perf_counter() - start)
    finally:
        os.write(there_w, b"q")
        os.waitpid(child, 0)
        os.sched_setaffinity(0, mask)
        for fd in (there_r, there_w, back_r, back_w):
            os.close(fd)
    return statistics.median(latencies) * 1e6


def _pin(pids: list[int], cpu: int) -> None:
    for pid in pids:
        for thread in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(thread), {cpu})


def measure(gaps: list[float], requests: int, rounds: int, pin: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="dockyard-think-") as tmp, DockyardStack(Path(tmp) / "stack") as stack:
        root = Path(tmp)
        stack.deploy("think", [fixtures.tarball(fixtures.noop_model_dir(root / "noop"))])
        (container,) = stack.containers("think").values()
        relay_port = free_port()
        relayed = subprocess.Popen([sys.executable, "-m", "benchmarks.think_time", "--relay", str(relay_port), str(container.port)],
                                   cwd=Path(__file__).resolve().parent.parent)
        try:
            _wait_listening(relay_port)
            if pin:
                _pin([stack.server_pid()], 0)
                _pin(procs.tree(container.pid) + [relayed.pid], 1)
                os.sched_setaffinity(0, {1})
            targets = {"direct": (container.port, "/invocations"), "relay": (relay_port, "/invocations"),
                       "gateway": (stack.port, "/endpoints/think/invocations")}
            for port, path in targets.values():
                p50_us(port, path, 0, 200)  # warm-up
            seen: dict[tuple[float, str], list[float]] = {}
            for _ in range(rounds):
                for gap in gaps:
                    for name, (port, path) in targets.items():
                        seen.setdefault((gap, name), []).append(p50_us(port, path, gap, requests))
        finally:
            relayed.kill()
            relayed.wait()
    rows = []
    for gap in gaps:
        direct, hop, gateway = (statistics.median(seen[gap, name]) for name in targets)
        rows.append([f"{gap:g}", f"{direct:.0f}", f"{hop:.0f}", f"{gateway:.0f}", f"{hop - direct:+.0f}", f"{gateway - direct:+.0f}"])
    return table(["think time µs", "direct p50 µs", "relay p50 µs", "gateway p50 µs", "relay adds µs", "gateway adds µs"], rows)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the relay did not listen on {port}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.think_time", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaps", default="0,100,300", help="think times, µs, comma-separated")
    parser.add_argument("--requests", type=int, default=2000, help="invocations per figure")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians over them")
    parser.add_argument("--pin", action="store_true", help="gateway on CPU 0; container, relay and client on CPU 1")
    parser.add_argument("--relay", nargs=2, type=int, metavar=("PORT", "UPSTREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:
        relay(*args.relay)
        return 0
    gaps = [float(g) for g in args.gaps.split(",")]
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        print("this needs CPUs 0 and 1", file=sys.stderr)
        return 2
    print(table(["think time µs", "pipe round trip, same CPU µs", "pipe round trip, other CPU µs"],
                [[f"{g:g}", f"{round_trip_us(True, g):.1f}", f"{round_trip_us(False, g):.1f}"] for g in gaps]) + "\n")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(measure(gaps, args.requests, args.rounds, args.pin))
    print(f"\n{started}, load average {os.getloadavg()[0]:.1f} at the end, pinned: {args.pin}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""CPU per request of ``gateway/upstream.py`` versions, alone: ``python -m benchmarks.upstream_cpu FILE...``.

Each file (an ``upstream.py``, e.g. this checkout's and an older commit's) is loaded as its own
module and drives 20 000 sequential keep-alive POSTs, on uvloop, against one raw in-process
server that answers every request with the same small response — what the noop container sends.
Rounds alternate between the files; the figure is process CPU time per request (client and server
together: the server's share is the same for every file, so differences are the clients').
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import sys
import time
from types import ModuleType

import uvloop

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n"
    b"Date: Sun, 29 Nov 2026 23:00:00 GMT\r\nServer: Python/3.11 aiohttp/3.14.5\r\n\r\n[[5.1, 3.5, 1.4, 0.2]]"
)
HEADERS = [("Content-Type", "application/json"), ("Accept", "application/json")]


class _Container(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(RESPONSE)  # type: ignore[attr-defined]


def load(path: str, index: int) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"upstream_{index}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def per_request(module: ModuleType, requests: int) -> float:
    server = await asyncio.get_running_loop().create_server(_Container, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = module.Upstream(5.0)
    for count in (requests // 10, requests):  # warm-up, then measured
        started = time.process_time()
        for _ in range(count):
            resp = await upstream.post("127.0.0.1", port, "/invocations", HEADERS, b"[[5.1, 3.5, 1.4, 0.2]]")
            await resp.read()
            resp.release()
    await upstream.close()
    server.close()
    return (time.process_time() - started) / requests * 1e6


def main(paths: list[str], rounds: int = 5, requests: int = 20000) -> int:
    modules = [load(path, i) for i, path in enumerate(paths)]
    figures: dict[str, list[float]] = {path: [] for path in paths}
    for round_ in range(rounds):
        order = list(zip(paths, modules)) if round_ % 2 == 0 else list(zip(paths, modules))[::-1]
        for path, module in order:
            figures[path].append(uvloop.run(per_request(module, requests)))
    for path, values in figures.items():
        print(f"{statistics.median(values):6.1f} µs/request (min {min(values):.1f}, max {max(values):.1f})  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

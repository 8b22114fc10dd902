"""The fallback load client: ``python -m benchmarks.aioclient URL BODY_FILE CONCURRENCY SECONDS``.

``concurrency`` coroutines share one aiohttp session with keep-alive, each POSTing the body in a
loop until the time is up; the headers come from ``BENCH_HEADERS`` ("Name: value" lines), as
for the wrk script. Prints one JSON line with the same fields as ``post.lua``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def load(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    failures = {"errors": 0, "non_2xx": 0}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status >= 400:
                            failures["non_2xx"] += 1
                except aiohttp.ClientError:
                    failures["errors"] += 1
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return figures(latencies, elapsed, failures)


def figures(latencies: list[float], elapsed: float, failures: dict[str, int]) -> dict[str, float]:
    """The JSON line of one run, with the same fields as ``post.lua``."""
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        **failures,
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
    }


def arguments(argv: list[str]) -> tuple[str, bytes, dict[str, str], int, float]:
    """URL, body, headers (``BENCH_HEADERS``), concurrency and seconds of a load client's command line."""
    url, body_file, concurrency, seconds = argv
    with open(body_file, "rb") as f:
        body = f.read()
    headers = {
        name.strip(): value.strip()
        for line in os.environ.get("BENCH_HEADERS", "").splitlines()
        for name, _, value in [line.partition(":")]
    }
    return url, body, headers, int(concurrency), float(seconds)


def main(argv: list[str]) -> int:
    print(json.dumps(asyncio.run(load(*arguments(argv)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The load client that sends like boto3: ``python -m benchmarks.pyclient URL BODY_FILE CONCURRENCY SECONDS``.

botocore sends through urllib3's ``HTTPConnection``, a subclass of ``http.client``'s: the
request head goes out in one ``send``, the body in a second; ``TCP_NODELAY`` is on (urllib3's
default socket option); one request at a time per connection, kept alive. wrk writes head and
body in one go, so a server sees a different pattern of segments and wake-ups from it. This client
is ``http.client`` used exactly that way, one thread per connection; the headers come from
``BENCH_HEADERS``. Prints one JSON line with the same fields as ``post.lua``.

With ``BENCH_ONE_WRITE=1`` head and body go out in one ``send``, as wrk and older Pythons sent
them: everything else equal, the difference the second write makes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from benchmarks.aioclient import arguments, figures


class OneWriteConnection(http.client.HTTPConnection):
    """``http.client`` that sends the request head and body in one ``send``."""

    def _send_output(self, message_body: bytes | None = None, encode_chunked: bool = False) -> None:
        self._buffer.extend((b"", b""))  # type: ignore[attr-defined]
        head = b"\r\n".join(self._buffer)  # type: ignore[attr-defined]
        del self._buffer[:]  # type: ignore[attr-defined]
        self.send(head + (message_body or b""))


def worker(url: str, body: bytes, headers: dict[str, str], deadline: float, latencies: list[float], failures: dict[str, int]) -> None:
    parts = urlsplit(url)
    kind = OneWriteConnection if os.environ.get("BENCH_ONE_WRITE") == "1" else http.client.HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    mine = []
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                failures["errors"] += 1
                conn.close()
                continue
            mine.append(time.perf_counter() - start)
            if resp.status >= 400:
                failures["non_2xx"] += 1
    finally:
        conn.close()
        latencies.extend(mine)


def load(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    failures = {"errors": 0, "non_2xx": 0}
    started = time.perf_counter()
    threads = [
        threading.Thread(target=worker, args=(url, body, headers, started + seconds, latencies, failures))
        for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return figures(latencies, time.perf_counter() - started, failures)


def main(argv: list[str]) -> int:
    print(json.dumps(load(*arguments(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

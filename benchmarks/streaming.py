"""Response streaming: what the gateway adds to a stream.

``python -m benchmarks.streaming [--rounds N]`` deploys one managed scikit-learn endpoint whose
``predict_fn`` yields chunks, each stamped with ``time.monotonic_ns()`` as it is yielded (one
clock for every process of the machine), and measures, interleaved round by round:

- time to first byte: request sent → first chunk read, straight from the container's port
  (its own chunked response) and through dockyard (InvokeEndpointWithResponseStream, first event);
- chunk-to-client latency: stamp → the moment the client has the chunk, for chunks yielded
  ``GAP`` apart, straight from the container, through dockyard read raw, and through dockyard read
  by boto3 (``for event in resp["Body"]``).

Both paths include the managed server's own hop (worker → server); the difference is the gateway's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import platformdirs
from botocore.config import Config

from benchmarks.markdown import table
from benchmarks.stack import DockyardStack
from dockyard.artifacts.package import make_model_tarball

NAME = "bench-stream"
CHUNKS = 8
GAP = 0.01  # seconds between chunks: each travels on its own
STREAM_CODE = '''
import json
import os
import time


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(request, model):
    if request.get("port"):  # where the benchmark reaches this container directly
        yield os.environ["SAGEMAKER_BIND_TO_PORT"].encode()
        return
    for k in range(request["chunks"]):
        if k:
            time.sleep(request["gap"])
        yield b"%d\\n" % time.monotonic_ns()


def output_fn(prediction, accept):
    return prediction, "text/plain"
'''
_FRAME_LENGTH = struct.Struct("!I")
_HEADERS = {"Content-Type": "application/json"}


def _model(tmp: Path) -> Path:
    src = tmp / "stream-model"
    (src / "code").mkdir(parents=True)
    (src / "code" / "inference.py").write_text(STREAM_CODE)
    return make_model_tarball(src, tmp / "stream-model.tar.gz")


def _request(chunks: int) -> bytes:
    return json.dumps({"chunks": chunks, "gap": GAP}).encode()


def _stamps(payload: bytes) -> list[int]:
    return [int(line) for line in payload.split()]


def _direct(conn: http.client.HTTPConnection, chunks: int) -> tuple[float, list[float]]:
    """(ms to the first chunk, ms from each stamp to its arrival) straight from the container."""
    started = time.monotonic_ns()
    conn.request("POST", "/invocations", _request(chunks), _HEADERS)
    resp = conn.getresponse()
    first, latencies = 0.0, []
    while line := resp.readline():
        now = time.monotonic_ns()
        first = first or (now - started) / 1e6
        latencies += [(now - stamp) / 1e6 for stamp in _stamps(line)]
    return first, latencies


def _through(conn: http.client.HTTPConnection, chunks: int) -> tuple[float, list[float]]:
    """The same through dockyard's InvokeEndpointWithResponseStream, its frames read raw."""
    started = time.monotonic_ns()
    conn.request("POST", f"/endpoints/{NAME}/invocations-response-stream", _request(chunks), _HEADERS)
    resp = conn.getresponse()
    first, latencies = 0.0, []
    while prelude := resp.read(_FRAME_LENGTH.size):
        (length,) = _FRAME_LENGTH.unpack(prelude)
        frame = resp.read(length - _FRAME_LENGTH.size)
        now = time.monotonic_ns()
        first = first or (now - started) / 1e6
        headers_length = _FRAME_LENGTH.unpack(frame[:4])[0]
        payload = frame[8 + headers_length : -4]
        latencies += [(now - stamp) / 1e6 for stamp in _stamps(payload)]
    return first, latencies


def _boto3(runtime: object, chunks: int) -> tuple[float, list[float]]:
    """Through dockyard as user code reads it: boto3's event-stream parser."""
    started = time.monotonic_ns()
    resp = runtime.invoke_endpoint_with_response_stream(  # type: ignore[attr-defined]
        EndpointName=NAME, ContentType="application/json", Body=_request(chunks))
    first, latencies = 0.0, []
    for event in resp["Body"]:
        now = time.monotonic_ns()
        first = first or (now - started) / 1e6
        latencies += [(now - stamp) / 1e6 for stamp in _stamps(event["PayloadPart"]["Bytes"])]
    return first, latencies


def measure(stack: DockyardStack, rounds: int, progress: Callable[[str], None]) -> dict[str, dict[str, list[float]]]:
    """Per path: TTFB (ms, one per round) and chunk latencies (ms, every chunk of every round)."""
    runtime = boto3.client("sagemaker-runtime", endpoint_url=stack.url, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench",
                           config=Config(retries={"max_attempts": 1}))
    # The container says which port it listens on (its process environment may be a fork
    # server's, so /proc does not tell).
    port = runtime.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=b'{"port": true}')
    direct = http.client.HTTPConnection("127.0.0.1", int(port["Body"].read()))
    gateway = http.client.HTTPConnection("127.0.0.1", stack.port)
    paths = {
        "container direct": lambda n: _direct(direct, n),
        "through dockyard (raw)": lambda n: _through(gateway, n),
        "through dockyard (boto3)": lambda n: _boto3(runtime, n),
    }
    results: dict[str, dict[str, list[float]]] = {p: {"ttfb": [], "chunk": []} for p in paths}
    for path in paths.values():  # warm connections and code paths
        path(CHUNKS)
    for k in range(rounds):
        for name, path in paths.items():
            _, latencies = path(CHUNKS)
            ttfb, _ = path(1)
            results[name]["ttfb"].append(ttfb)
            results[name]["chunk"] += latencies[1:]  # the first chunk's includes the request
        if k % 20 == 0:
            progress(f"round {k + 1}/{rounds}")
    return results


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def report(results: dict[str, dict[str, list[float]]]) -> str:
    base = results["container direct"]
    rows = []
    for name, r in results.items():
        ttfb, chunk = statistics.median(r["ttfb"]), statistics.median(r["chunk"])
        rows.append([
            name, f"{ttfb:.2f}", f"{ttfb - statistics.median(base['ttfb']):+.2f}",
            f"{ttfb / statistics.median(base['ttfb']):.2f}×", f"{chunk:.2f}", f"{_pct(r['chunk'], 99):.2f}",
            f"{chunk - statistics.median(base['chunk']):+.2f}",
        ])
    return table(
        ["path", "TTFB p50 ms", "vs direct ms", "ratio", "chunk→client p50 ms", "p99 ms", "vs direct ms"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds per path (default 100)")
    args = parser.parse_args(argv)
    # Under the home directory: model data in /tmp is outside the server's default allowed paths.
    cache = Path(platformdirs.user_cache_dir("dockyard")) / "benchmarks"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streaming-", dir=cache) as tmp, DockyardStack(Path(tmp) / "stack") as stack:
        stack.deploy(NAME, [_model(Path(tmp))])
        results = measure(stack, args.rounds, lambda line: print(line, file=sys.stderr))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

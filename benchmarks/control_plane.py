"""Does the control plane stall invocations? ``python -m benchmarks.control_plane``

One client invokes a no-op endpoint in a loop (one keep-alive connection, one request at a
time) while, in alternate rounds, four other processes loop ``ListModels`` over a few hundred
models (every page, as boto3's paginator does). Rounds alternate side by side — alone, with
List*, alone, … — so a busy machine affects both alike; the figure is the ratio of the p50s.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from benchmarks import fixtures
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack

LISTERS = 4


def invoke_p50_ms(port: int, endpoint: str, seconds: float) -> tuple[float, int]:
    """p50 latency (ms) and count of sequential invocations for ``seconds``."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        conn.request("POST", f"/endpoints/{endpoint}/invocations", body=fixtures.SAGEMAKER_BODY,
                     headers=dict(fixtures.JSON_HEADERS))
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"invocation answered {resp.status}")
        latencies.append((time.perf_counter() - start) * 1000)
    conn.close()
    return statistics.median(latencies), len(latencies)


def list_models_forever(url: str, calls: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                      aws_secret_access_key="bench", config=Config(retries={"max_attempts": 1}))
    while True:
        for _ in sm.get_paginator("list_models").paginate(PaginationConfig={"PageSize": 100}):
            with calls.get_lock():
                calls.value += 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.control_plane", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=300, help="models the List* calls page through")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each kind, alternating")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp, DockyardStack(Path(tmp)) as stack:
        tarball = fixtures.tarball(fixtures.noop_model_dir(Path(tmp) / "models"))
        stack.deploy("noop", [tarball])
        for i in range(args.models):
            stack.sm.create_model(ModelName=f"listed-{i}", ExecutionRoleArn=ROLE, PrimaryContainer={
                "Image": SKLEARN_URI, "ModelDataUrl": tarball.resolve().as_uri(),
                "Environment": {f"KEY_{k}": "v" * 40 for k in range(20)}})
        invoke_p50_ms(stack.port, "noop", 1.0)  # warm-up
        alone, loaded, list_rates = [], [], []
        for _ in range(args.rounds):
            alone.append(invoke_p50_ms(stack.port, "noop", args.seconds))
            calls = multiprocessing.Value("i", 0)
            listers = [multiprocessing.Process(target=list_models_forever, args=(stack.url, calls), daemon=True)
                       for _ in range(LISTERS)]
            for proc in listers:
                proc.start()
            time.sleep(1.0)  # the listers' imports and first calls
            before = calls.value
            loaded.append(invoke_p50_ms(stack.port, "noop", args.seconds))
            list_rates.append((calls.value - before) / args.seconds)
            for proc in listers:
                proc.terminate()
                proc.join()
        p50_alone = statistics.median(p for p, _ in alone)
        p50_loaded = statistics.median(p for p, _ in loaded)
        print(f"| invocations alone | p50 {p50_alone:.2f} ms | {statistics.median(n for _, n in alone) / args.seconds:.0f} req/s |")
        print(f"| invocations while {LISTERS} clients loop ListModels over {args.models} models "
              f"({statistics.median(list_rates):.0f} pages/s) | p50 {p50_loaded:.2f} ms | "
              f"{statistics.median(n for _, n in loaded) / args.seconds:.0f} req/s |")
        print(f"| ratio (with List* / alone) | {p50_loaded / p50_alone:.2f} | |")


if __name__ == "__main__":
    main()

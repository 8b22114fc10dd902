"""Serverless cold starts: a scikit-learn serverless variant (process runtime), from the request
that finds it scaled to zero to its answer, beside the same variant's warm latency.

``python -m benchmarks.serverless [--rounds N]`` deploys the iris model as a serverless variant on
a server whose idle period is half a second, and per round waits until the variant has scaled to
zero, times one InvokeEndpoint (the cold start: the container starts, loads the model, passes
/ping, answers), then times warm invocations right after. It does so with the fork server (the
default) and without it (``DOCKYARD_FORK_SERVER=false``: the container is a new interpreter).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import platformdirs
from botocore.config import Config

from benchmarks import fixtures
from benchmarks.markdown import table
from benchmarks.spread import Spread
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack

NAME = "bench-serverless"
ROW = b"5.1,3.5,1.4,0.2"
WARM_CALLS = 20
# A hang guard while waiting for the variant to scale to zero, not a timing.
WAIT_LIMIT = 120.0
SETTINGS = {"DOCKYARD_SERVERLESS_IDLE_SECONDS": "0.5", "DOCKYARD_HEALTH_INTERVAL": "0.1"}


def deploy(stack: DockyardStack, tarball: Path) -> None:
    stack.sm.create_model(ModelName=NAME, ExecutionRoleArn=ROLE,
                          PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.resolve().as_uri()})
    stack.sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": NAME,
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])
    stack.create_endpoint(NAME)


def scaled_to_zero(stack: DockyardStack) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{stack.url}/_dockyard/endpoints") as resp:
            variant = json.load(resp)["endpoints"][NAME]["AllTraffic"]
        if (variant["ready"], variant["desired"]) == (0, 0):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{NAME} did not scale to zero within {WAIT_LIMIT:g} s")


def measure(stack: DockyardStack, rounds: int, progress: Callable[[str], None]) -> dict[str, list[float]]:
    runtime = boto3.client("sagemaker-runtime", endpoint_url=stack.url, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench",
                           config=Config(retries={"total_max_attempts": 1}))

    def invoke() -> float:
        started = time.perf_counter()
        body = runtime.invoke_endpoint(EndpointName=NAME, ContentType="text/csv", Body=ROW)["Body"].read()
        elapsed = time.perf_counter() - started
        assert body == b"[0]", body
        return elapsed

    cold: list[float] = []
    warm: list[float] = []
    for k in range(rounds):
        scaled_to_zero(stack)
        cold.append(invoke())
        warm += [invoke() for _ in range(WARM_CALLS)]
        progress(f"  round {k + 1}: cold {cold[-1] * 1000:.0f} ms, warm p50 {statistics.median(warm) * 1000:.2f} ms")
    return {"cold": cold, "warm": warm}


def report(results: dict[str, dict[str, list[float]]]) -> str:
    rows = []
    for label, r in results.items():
        cold, warm = Spread.of(r["cold"]), statistics.median(r["warm"])
        rows.append([label, f"{cold.median * 1000:.0f} ({cold.low * 1000:.0f}–{cold.high * 1000:.0f})",
                     f"{warm * 1000:.2f}", f"{cold.median / warm:.0f}×"])
    return table(["container start", "cold start ms, median (min–max)", "warm p50 ms", "cold / warm"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serverless", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="cold starts per configuration (default 5)")
    args = parser.parse_args(argv)
    cache = platformdirs.user_cache_path("dockyard-benchmarks")
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="serverless-", dir=cache) as tmp:
        tarball = fixtures.tarball(fixtures.iris_model_dir(Path(tmp)))
        for label, extra in (("forked (fork server)", {}), ("new interpreter", {"DOCKYARD_FORK_SERVER": "false"})):
            print(f"{label}:", file=sys.stderr)
            with DockyardStack(Path(tmp) / label.split()[0], settings={**SETTINGS, **extra}) as stack:
                deploy(stack, tarball)
                results[label] = measure(stack, args.rounds, lambda line: print(line, file=sys.stderr))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

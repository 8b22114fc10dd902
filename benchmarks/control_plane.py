"""Does the control plane stall invocations? ``python -m benchmarks.control_plane``

One client invokes a no-op endpoint in a loop (one keep-alive connection, one request at a
time) while, in alternate rounds, four other processes loop ``ListModels`` over a few hundred
models with large specs (every page, as boto3's paginator does) — or, as a control, loop ``GET /_dockyard/health``
as fast as they can, which costs the server next to nothing. On a small machine four busy client
processes would take CPU from the server whatever they ask, so they run at the lowest priority
(nice 19): what remains is what their requests cost the server; the control shows the rest.
Rounds alternate side by side (alone, List*, control, alone, …), so a busy
machine affects all alike; the figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from benchmarks import fixtures
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack

LISTERS = 4


def invoke_p50_ms(port: int, endpoint: str, seconds: float) -> tuple[tuple[float, float], int]:
    """p50 and p99 latency (ms) and count of sequential invocations for ``seconds``."""
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
    latencies.sort()
    return (statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))]), len(latencies)


def health_forever(url: str, calls: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    os.nice(19)
    conn = http.client.HTTPConnection(url.split("//", 1)[1])
    while True:
        conn.request("GET", "/_dockyard/health")
        conn.getresponse().read()
        with calls.get_lock():
            calls.value += 1


def list_models_forever(url: str, calls: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    os.nice(19)
    sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                      aws_secret_access_key="bench", config=Config(retries={"max_attempts": 1}))
    while True:
        for _ in sm.get_paginator("list_models").paginate(PaginationConfig={"PageSize": 100}):
            with calls.get_lock():
                calls.value += 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.control_plane", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=500, help="models the List* calls page through")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each kind, alternating")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp, DockyardStack(Path(tmp)) as stack:
        tarball = fixtures.tarball(fixtures.noop_model_dir(Path(tmp) / "models"))
        stack.deploy("noop", [tarball])
        for i in range(args.models):
            stack.sm.create_model(ModelName=f"listed-{i}", ExecutionRoleArn=ROLE, PrimaryContainer={
                "Image": SKLEARN_URI, "ModelDataUrl": tarball.resolve().as_uri(),
                # Near the largest Environment SageMaker accepts (32 KiB in all): a List* that
                # read every spec would have megabytes to parse on each call.
                "Environment": {f"KEY_{k}": "v" * 1000 for k in range(30)}})
        invoke_p50_ms(stack.port, "noop", 1.0)  # warm-up
        loads = {"alone": None, f"{LISTERS} clients loop ListModels over {args.models} models": list_models_forever,
                 f"control: {LISTERS} clients loop GET /_dockyard/health": health_forever}
        p50s: dict[str, list[float]] = {name: [] for name in loads}
        p99s: dict[str, list[float]] = {name: [] for name in loads}
        rates: dict[str, list[float]] = {name: [] for name in loads}
        calls_per_s: dict[str, list[float]] = {name: [] for name in loads}
        server_cpu: dict[str, list[float]] = {name: [] for name in loads}
        for _ in range(args.rounds):
            for name, loop in loads.items():
                (p50, p99), count, calls, cpu = measure(stack, loop, args.seconds)
                server_cpu[name].append(cpu)
                p50s[name].append(p50)
                p99s[name].append(p99)
                rates[name].append(count / args.seconds)
                calls_per_s[name].append(calls)
        alone = statistics.median(p50s["alone"])
        print("| load | their calls/s | server CPU (cores) | invocation p50 ms | p99 ms | invocations/s | p50 / alone |")
        print("|---|---|---|---|---|---|---|")
        for name in loads:
            p50 = statistics.median(p50s[name])
            print(f"| {name} | {statistics.median(calls_per_s[name]):.0f} | {statistics.median(server_cpu[name]):.2f} "
                  f"| {p50:.2f} | {statistics.median(p99s[name]):.1f} | {statistics.median(rates[name]):.0f} "
                  f"| {p50 / alone:.2f} |")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(stack: DockyardStack, loop: object, seconds: float) -> tuple[tuple[float, float], int, float, float]:
    """Invocation p50 and count while ``LISTERS`` processes run ``loop`` (None: alone), their
    calls per second, and the server's CPU use meanwhile (1.0 = one core)."""
    if loop is None:
        cpu = cpu_seconds(stack.server_pid())
        p50, count = invoke_p50_ms(stack.port, "noop", seconds)
        return p50, count, 0.0, (cpu_seconds(stack.server_pid()) - cpu) / seconds
    calls = multiprocessing.Value("i", 0)
    procs = [multiprocessing.Process(target=loop, args=(stack.url, calls), daemon=True) for _ in range(LISTERS)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # their imports and first calls
    before, cpu = calls.value, cpu_seconds(stack.server_pid())
    p50, count = invoke_p50_ms(stack.port, "noop", seconds)
    rate = (calls.value - before) / seconds
    cpu = (cpu_seconds(stack.server_pid()) - cpu) / seconds
    for proc in procs:
        proc.terminate()
        proc.join()
    return p50, count, rate, cpu


if __name__ == "__main__":
    main()

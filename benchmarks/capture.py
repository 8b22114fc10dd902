"""What data capture adds to an invocation: ``python -m benchmarks.capture``

Three endpoints serving the same no-op model on one server: one capturing 100 % of its invocations
(input and output, to a file:// destination), two not (the second shows how much two identical
endpoints differ). One client invokes each in turn (one
keep-alive connection, one request at a time), in alternating rounds, so a busy machine affects
both alike; the figures are medians over the rounds. Also, in process: the cost of the hot-path
hook itself (``DataCapture.observe``: a sampling decision and an append to a deque).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from benchmarks import fixtures
from benchmarks.control_plane import invoke_p50_ms
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack
from dockyard.capture.capture import CaptureConfig, DataCapture

# endpoint → its capture sampling percentage (None: no DataCaptureConfig)
ENDPOINTS = {"plain": None, "captured": 100, "plain-control": None}


def observe_us(calls: int) -> float:
    """Microseconds per ``observe`` of a sampled invocation (100 %)."""
    capture = DataCapture(store=None, storage=None, registry=CollectorRegistry())  # type: ignore[arg-type]
    config = CaptureConfig.from_endpoint_config({"DataCaptureConfig": {
        "InitialSamplingPercentage": 100, "DestinationS3Uri": "file:///tmp/unused",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}})
    capture._configs = {"bench": config}  # type: ignore[dict-item]
    body = fixtures.SAGEMAKER_BODY
    start = time.perf_counter()
    for _ in range(calls):
        capture.observe("bench", "AllTraffic", None, "application/json", body, "application/json", body)
        if len(capture._buffer) > 5000:
            capture._buffer.clear()  # as the flush would (not measured: it runs on another thread)
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each, alternating")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp, DockyardStack(Path(tmp) / "stack") as stack:
        tarball = fixtures.tarball(fixtures.noop_model_dir(Path(tmp) / "models"))
        for name, capture in ENDPOINTS.items():
            stack.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
                "Image": SKLEARN_URI, "ModelDataUrl": tarball.resolve().as_uri()})
            extra = {} if capture is None else {"DataCaptureConfig": {
                "EnableCapture": True, "InitialSamplingPercentage": capture,
                "DestinationS3Uri": (Path(tmp) / "capture").resolve().as_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}}
            stack.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large"}], **extra)
            stack.create_endpoint(name)
            invoke_p50_ms(stack.port, name, 1.0)  # warm-up
        p50s: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
        p99s: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
        for _ in range(args.rounds):
            for name in ENDPOINTS:
                (p50, p99), _ = invoke_p50_ms(stack.port, name, args.seconds)
                p50s[name].append(p50)
                p99s[name].append(p99)
        files = list((Path(tmp) / "capture").rglob("*.jsonl"))
        lines = sum(len(f.read_text().splitlines()) for f in files)
    plain, captured = statistics.median(p50s["plain"]), statistics.median(p50s["captured"])
    print("| endpoint | invocation p50 ms | p99 ms |")
    print("|---|---|---|")
    for name in ENDPOINTS:
        print(f"| {name} | {statistics.median(p50s[name]):.3f} | {statistics.median(p99s[name]):.2f} |")
    print(f"\ncapture at 100 % adds {captured - plain:+.3f} ms p50 ({lines} records in {len(files)} files); "
          f"DataCapture.observe in process: {observe_us(200_000):.2f} µs per call")


if __name__ == "__main__":
    main()

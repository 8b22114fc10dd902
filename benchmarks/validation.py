"""What validating a control-plane request costs: ``python -m benchmarks.validation``.

The server checks every request against botocore's SageMaker model (``api/validation.py``) before
it touches the store. This times ``validate`` on a small and a large ``CreateModel`` in process,
next to ``json.loads`` of the same request body — the work the server does on it anyway — in
alternating rounds, so a busy machine affects both alike; the figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from dockyard.api.validation import sagemaker_validator

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:1.7"
REQUESTS: dict[str, dict[str, Any]] = {
    "CreateModel, one container": {"ModelName": "m", "PrimaryContainer": {"Image": IMAGE}},
    "CreateModel, 5 containers and 10 tags": {
        "ModelName": "m", "InferenceExecutionConfig": {"Mode": "Direct"}, "Tags": [{"Key": "k", "Value": "v"}] * 10,
        "Containers": [{"ContainerHostname": f"c{i}", "Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz",
                        "Environment": {"A": "1", "B": "2"}} for i in range(5)]},
}


def per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.validation", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000, help="calls per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each, alternating")
    args = p.parse_args(argv)
    validator = sagemaker_validator()
    print("| request | validate µs | json.loads µs | validate / json.loads |")
    print("|---|---|---|---|")
    for name, params in REQUESTS.items():
        body = json.dumps(params)
        validator.validate("CreateModel", params)  # builds the shape facts once, as the first request does
        checks: list[float] = []
        parses: list[float] = []
        for _ in range(args.rounds):
            checks.append(per_call_us(lambda params=params: validator.validate("CreateModel", params), args.calls))
            parses.append(per_call_us(lambda body=body: json.loads(body), args.calls))
        check, parse = statistics.median(checks), statistics.median(parses)
        print(f"| {name} | {check:.1f} | {parse:.1f} | {check / parse:.1f} |")


if __name__ == "__main__":
    main()

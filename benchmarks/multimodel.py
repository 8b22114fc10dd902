"""Multi-model endpoints: what TargetModel costs warm, what a cold load costs, and many models in
little memory.

``python -m benchmarks.multimodel [--rounds N] [--requests N]`` starts one server (process
runtime, managed scikit-learn) and measures, side by side in that run:

- warm hit: the same model through a single-model endpoint and through a multi-model endpoint
  (``TargetModel`` of a loaded model), requests interleaved round by round;
- cold load: invoke → answer for a model not yet on the instance (download, unpack, load), and for
  one already unpacked but not loaded (an endpoint with ``ModelCacheSetting: Disabled`` unloads after
  each invocation, so its second call of a model loads from the disk cache);
- 200 models on an ``ml.c8g.medium`` (2 GiB): each model holds an 80 MiB array, so about 20 fit;
  requests drawn from a Zipf distribution by 4 clients. Reports failed requests, retries of
  ModelNotReadyException, the hit rate, the container's peak memory and whether its instance was
  ever replaced (an OOM kill would show as a new instance).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import joblib
import platformdirs
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from benchmarks.markdown import table
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack
from dockyard.artifacts.package import make_model_tarball

BODY = b"5.1,3.5,1.4,0.2"
HEADERS = {"Content-Type": "text/csv", "Accept": "application/json"}
MODELS = 200
BALLAST_MIB = 80
ZIPF_S = 1.1
CLIENTS = 4
BALLAST_CODE = f'''
import os

import joblib
import numpy as np


def model_fn(model_dir):
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    # Resident memory a real model would take: {BALLAST_MIB} MiB, every page touched.
    model.ballast_ = np.ones({BALLAST_MIB} * 2**17)
    return model
'''


def _prefix(root: Path, count: int, code: str | None) -> Path:
    """``root/m<i>.tar.gz`` for ``count`` models (the same classifier; ``code``: its inference.py)."""
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    source = root.parent / f"{root.name}-src"
    source.mkdir(parents=True)
    joblib.dump(model, source / "model.joblib")
    if code is not None:
        (source / "code").mkdir()
        (source / "code" / "inference.py").write_text(code)
    root.mkdir()
    for i in range(count):
        make_model_tarball(source, root / f"m{i}.tar.gz")
    return root


def _mme(stack: DockyardStack, name: str, prefix: Path, instance_type: str = "ml.m5.large",
         cache: str = "Enabled") -> None:
    stack.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": prefix.resolve().as_uri() + "/",
        "MultiModelConfig": {"ModelCacheSetting": cache}})
    stack.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": instance_type}])
    stack.create_endpoint(name)


def _invoke(conn: http.client.HTTPConnection, endpoint: str, target: str | None = None,
            failures: list[str] | None = None) -> tuple[int, float]:
    headers = {**HEADERS, **({"X-Amzn-SageMaker-Target-Model": target} if target else {})}
    started = time.perf_counter()
    conn.request("POST", f"/endpoints/{endpoint}/invocations", BODY, headers)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200 and failures is not None:
        failures.append(f"{resp.status} {body[:300].decode(errors='replace')}")
    return resp.status, (time.perf_counter() - started) * 1000


def warm(stack: DockyardStack, rounds: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port)
    single, multi = [], []
    for _ in range(20):  # warm the connections, the code paths and the model
        _invoke(conn, "bench-single")
        _invoke(conn, "bench-mme", "m0.tar.gz")
    for _ in range(rounds):
        single.append(_invoke(conn, "bench-single")[1])
        multi.append(_invoke(conn, "bench-mme", "m0.tar.gz")[1])
    return {"single": statistics.median(single), "multi": statistics.median(multi)}


def cold(stack: DockyardStack, count: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port)
    downloaded, unpacked = [], []
    for i in range(1, count + 1):
        status, ms = _invoke(conn, "bench-mme-nocache", f"m{i}.tar.gz")  # download + unpack + load
        assert status == 200, status
        downloaded.append(ms)
        status, ms = _invoke(conn, "bench-mme-nocache", f"m{i}.tar.gz")  # load from the disk cache
        assert status == 200, status
        unpacked.append(ms)
    return {"not downloaded": statistics.median(downloaded), "already unpacked": statistics.median(unpacked)}


def _stats(stack: DockyardStack, endpoint: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port)
    conn.request("GET", f"/_dockyard/endpoints/{endpoint}/stats")
    return json.loads(conn.getresponse().read())


def zipf(stack: DockyardStack, requests: int) -> dict[str, float]:
    weights = [1 / (k + 1) ** ZIPF_S for k in range(MODELS)]
    rng = random.Random(7)
    targets = [f"m{i}.tar.gz" for i in rng.choices(range(MODELS), weights, k=requests)]
    counts = {"failed": 0, "retried 429": 0}
    failures: list[str] = []
    lock = threading.Lock()
    before = {row["instance"] for row in _stats(stack, "bench-zipf")["containers"]}
    peak = 0

    def client(mine: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=120)
        for target in mine:
            for _ in range(10):
                status, _ = _invoke(conn, "bench-zipf", target, failures)
                if status != 429:  # ModelNotReadyException: retried, as boto3 does
                    break
                with lock:
                    counts["retried 429"] += 1
                time.sleep(0.2)
            if status != 200:
                with lock:
                    counts["failed"] += 1

    threads = [threading.Thread(target=client, args=(targets[k::CLIENTS],)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, max((r["memory_bytes"] or 0 for r in _stats(stack, "bench-zipf")["containers"]), default=0))
        time.sleep(0.5)
    for failure in failures:
        if not failure.startswith("429"):
            print("failed:", failure, file=sys.stderr)
    stats = _stats(stack, "bench-zipf")
    hits = sum(m["hits"] for m in stats["models"])
    misses = sum(m["misses"] for m in stats["models"])
    return {**counts, "hit rate %": 100 * hits / max(hits + misses, 1),
            "loaded at the end": sum(m["loaded"] for m in stats["models"]),
            "peak container MiB": peak / 2**20,
            "instance replaced": float({r["instance"] for r in stats["containers"]} != before)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multimodel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="warm-hit rounds per endpoint (default 300)")
    parser.add_argument("--cold", type=int, default=20, help="models loaded cold (default 20)")
    parser.add_argument("--requests", type=int, default=1000, help="Zipf requests (default 1000)")
    args = parser.parse_args(argv)
    cache = Path(platformdirs.user_cache_dir("dockyard")) / "benchmarks"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="multimodel-", dir=cache) as tmp, \
            DockyardStack(Path(tmp) / "stack") as stack:
        small = _prefix(Path(tmp) / "small", args.cold + 1, None)
        heavy = _prefix(Path(tmp) / "heavy", MODELS, BALLAST_CODE)
        stack.deploy("bench-single", [small / "m0.tar.gz"])
        _mme(stack, "bench-mme", small)
        _mme(stack, "bench-mme-nocache", small, cache="Disabled")
        _mme(stack, "bench-zipf", heavy, instance_type="ml.c8g.medium")
        print("warm hits …", file=sys.stderr)
        w = warm(stack, args.rounds)
        print("cold loads …", file=sys.stderr)
        c = cold(stack, args.cold)
        print("Zipf over 200 models …", file=sys.stderr)
        z = zipf(stack, args.requests)
    print(table(["warm hit", "p50 ms"], [
        ["single-model endpoint", f"{w['single']:.3f}"], ["multi-model, TargetModel loaded", f"{w['multi']:.3f}"],
        ["difference", f"{w['multi'] - w['single']:+.3f}"]]))
    print()
    print(table(["cold load (invoke → answer)", "p50 ms"], [[k, f"{v:.1f}"] for k, v in c.items()]))
    print()
    print(table([f"{args.requests} Zipf(s={ZIPF_S}) requests, {MODELS} models, ~20 fit", "value"],
                [[k, f"{v:.1f}" if isinstance(v, float) else str(v)] for k, v in z.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

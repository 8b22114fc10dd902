"""Losing a Ray worker node under load: how long until its instances are out of rotation and serve
again on other nodes, and how many requests fail meanwhile — with the node health check that
docs/scale-out.md recommends beside Ray's default one, in the same run on the same machine.

``python -m benchmarks.ray_recovery [--rounds N] [--clients N] [--loss SIGKILL|SIGSTOP] [--only-tuned]``
starts, per configuration (how the worker is lost × which health check), a local
Ray cluster (a head with room for one ml.c5.large instance, two workers with room for two each;
tests/ray/ray_cluster.py), a ``dockyard serve --runtime ray`` on it, and an endpoint of three
ml.c5.large instances of the iris model. Per round: ``--clients`` threads invoke it without pause
(boto3, no retries), the worker holding the most instances is lost — every process of it SIGKILLed
(connections reset at once) or SIGSTOPped (silent, like a partition or a power loss) — and
``/_dockyard/endpoints`` and ``/_dockyard/endpoints/<name>/stats`` are read every 50 ms: *out of
rotation* is when the gateway's table no longer holds the lost instances; *serving again* is when
three instances, none on the lost node, are ready. The lost node is killed and started again
before the next round. Needs Ray (``pip install 'dockyard[ray]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import platformdirs
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from benchmarks import fixtures
from benchmarks.markdown import table
from benchmarks.spread import Spread
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack

# The test suite's local cluster (ray_cluster.py is shared, not copied).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ray"))
from ray_cluster import HEALTH_CHECK, Cluster, start_cluster  # noqa: E402

NAME = "bench-ray"
ROW = b"5.1,3.5,1.4,0.2"
INSTANCES = 3
# Hang guards, not timings.
WAIT_LIMIT = 180.0
READ_TIMEOUT = 30
HEALTH_CHECKS: dict[str, dict[str, int] | None] = {"tuned (docs/scale-out.md)": HEALTH_CHECK, "Ray's defaults": None}
# How the worker is lost: SIGKILL (its connections are reset at once) or SIGSTOP (it goes silent,
# as in a network partition or a power loss: only the health check notices).
LOSSES = ("SIGKILL", "SIGSTOP")
NODES = (("head", 2, 4), ("w1", 4, 8), ("w2", 4, 8))


def get(stack: DockyardStack, path: str) -> Any:
    with urllib.request.urlopen(f"{stack.url}{path}", timeout=10) as resp:
        return json.load(resp)


def placed(stack: DockyardStack) -> list[str]:
    """The node id prefix of each instance the gateway routes to."""
    nodes = get(stack, "/_dockyard/endpoints")["endpoints"][NAME]["AllTraffic"]["nodes"]
    return [node.rsplit("(", 1)[1].rstrip(")") for node in nodes]


def node_of(cluster: Cluster, prefix: str) -> str:
    return next(n.name for n in cluster.nodes if n.alive() and cluster.node_id(n.name).startswith(prefix))


def one_round(cluster: Cluster, stack: DockyardStack, clients: int, loss: str) -> dict[str, Any]:
    rt = boto3.client("sagemaker-runtime", endpoint_url=stack.url, region_name="us-east-1", aws_access_key_id="bench",
                      aws_secret_access_key="bench", config=Config(retries={"total_max_attempts": 1}, read_timeout=READ_TIMEOUT))
    by_node = Counter(node_of(cluster, p) for p in placed(stack))
    victim = max((n for n in by_node if n != "head"), key=lambda n: by_node[n])
    lost = cluster.node_id(victim)[:8]
    outcomes: Counter[str] = Counter()
    slowest = [0.0]
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                rt.invoke_endpoint(EndpointName=NAME, ContentType="text/csv", Body=ROW)["Body"].read()
                outcomes["ok"] += 1
            except ClientError as exc:
                outcomes[exc.response["Error"]["Code"]] += 1
            except ReadTimeoutError:
                outcomes["timed out"] += 1
            slowest[0] = max(slowest[0], time.perf_counter() - started)

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        before = Counter(outcomes)
        killed = time.perf_counter()
        node = next(n for n in cluster.nodes if n.name == victim)
        if loss == "SIGKILL":
            node.kill()
        else:
            node.freeze()
        out_of_rotation = serving = None
        while serving is None and time.perf_counter() - killed < WAIT_LIMIT:
            now = placed(stack)
            elapsed = time.perf_counter() - killed
            on_lost = [p for p in now if p == lost]
            if out_of_rotation is None and not on_lost:
                out_of_rotation = elapsed
            if len(now) == INSTANCES and not on_lost:
                serving = elapsed
            time.sleep(0.05)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    if serving is None:
        raise RuntimeError(f"instances of {victim} not replaced within {WAIT_LIMIT:g} s: {stack.log_tail()}")
    during = outcomes - before
    return {"victim": victim, "lost": by_node[victim], "out_of_rotation": out_of_rotation, "serving": serving,
            "requests": sum(during.values()), "failed": {k: v for k, v in during.items() if k != "ok"},
            "slowest": slowest[0]}


def run(label: str, health_check: dict[str, int] | None, loss: str, rounds: int, clients: int, tmp: Path,
        tarball: Path) -> list[dict[str, Any]]:
    cluster = start_cluster(tmp / "cluster", health_check)
    results = []
    try:
        for name, cpus, memory in NODES:
            cluster.start_node(name, cpus, memory)
        settings = {"DOCKYARD_RUNTIME": "ray", "DOCKYARD_RAY_ADDRESS": cluster.address}
        # Beside the model data: the stack allows local paths under its parent directory.
        with DockyardStack(tmp.parent / f"server-{tmp.name}", settings=settings) as stack:
            stack.sm.create_model(ModelName=NAME, ExecutionRoleArn=ROLE,
                                  PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.resolve().as_uri()})
            stack.sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": INSTANCES,
                "InstanceType": "ml.c5.large"}])
            stack.create_endpoint(NAME)
            for k in range(rounds):
                r = one_round(cluster, stack, clients, loss)
                results.append(r)
                print(f"  {label} round {k + 1}: {r}", file=sys.stderr)
                victim = r["victim"]
                for node in [n for n in cluster.nodes if n.name == victim]:
                    node.kill()
                cluster.nodes = [n for n in cluster.nodes if n.name != victim]
                spec = next(n for n in NODES if n[0] == victim)
                cluster.start_node(*spec)
    finally:
        cluster.stop()
    return results


def report(results: dict[tuple[str, str], list[dict[str, Any]]], clients: int) -> str:
    rows = []
    for label, rounds in results.items():
        failed: Counter[str] = Counter()
        for r in rounds:
            failed.update(r["failed"])
        requests = sum(r["requests"] for r in rounds)
        rows.append([
            *label, str(len(rounds)), str(sum(r["lost"] for r in rounds)),
            Spread.of(r["out_of_rotation"] for r in rounds).text(1), Spread.of(r["serving"] for r in rounds).text(1),
            str(requests), ", ".join(f"{n} {code}" for code, n in sorted(failed.items())) or "none",
            f"{max(r['slowest'] for r in rounds):.1f}",
        ])
    return table(["worker lost by", "node health check", "rounds", "instances lost", "out of rotation s", "serving again s",
                  f"requests ({clients} clients)", "failed", "slowest request s"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_recovery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="worker nodes killed per configuration (default 3)")
    parser.add_argument("--clients", type=int, default=2, help="threads invoking without pause (default 2)")
    parser.add_argument("--only-tuned", action="store_true", help="skip Ray's default health check (slow by design)")
    parser.add_argument("--loss", choices=LOSSES, action="append", help="how the worker is lost (default: both)")
    args = parser.parse_args(argv)
    cache = platformdirs.user_cache_path("dockyard-benchmarks")
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="ray-recovery-", dir=cache) as tmp:
        tarball = fixtures.tarball(fixtures.iris_model_dir(Path(tmp)))
        for loss in args.loss or LOSSES:
            for label, health_check in HEALTH_CHECKS.items():
                if args.only_tuned and health_check is None:
                    continue
                results[(loss, label)] = run(f"{loss}, {label}", health_check, loss, args.rounds, args.clients,
                                             Path(tmp) / f"{loss}-{label.split()[0]}", tarball)
    print(report(results, args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

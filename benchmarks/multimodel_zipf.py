"""Many models in little memory: 200 models on an ``ml.c8g.medium`` (2 GiB), each holding an
80 MiB array so that about 20 fit, requests drawn from a Zipf distribution by 4 clients.

Reports failed requests, retries of ModelNotReadyException, the hit rate, the models loaded at the
end, the container's peak memory, and the proof that it was never OOM-killed: on the docker
runtime the engine's ``oom`` events during the run, the container's ``OOMKilled`` flag and restart
count, and the cgroup's own high-water mark (``memory.max_usage_in_bytes``, or ``memory.peak``),
which no sampling can miss; on both runtimes whether the instance was ever replaced (the process
runtime's memory watchdog stops a multi-model container past the instance's memory, as docker's
limit would).
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.stack import DockyardStack

MODELS = 200
BALLAST_MIB = 80
ZIPF_S = 1.1
CLIENTS = 4
INSTANCE_TYPE = "ml.c8g.medium"
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


def stats(stack: DockyardStack, endpoint: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port)
    conn.request("GET", f"/_dockyard/endpoints/{endpoint}/stats")
    return json.loads(conn.getresponse().read())


def run(stack: DockyardStack, endpoint: str, requests: int, invoke: Any, docker: bool) -> dict[str, float | str]:
    """``requests`` Zipf-drawn invocations of ``endpoint`` (deployed on ``INSTANCE_TYPE`` over
    ``MODELS`` ballast models); ``invoke(conn, endpoint, target, failures)`` → (status, ms)."""
    weights = [1 / (k + 1) ** ZIPF_S for k in range(MODELS)]
    targets = [f"m{i}.tar.gz" for i in random.Random(7).choices(range(MODELS), weights, k=requests)]
    counts = {"failed": 0, "retried 429": 0}
    failures: list[str] = []
    lock = threading.Lock()
    before = {row["instance"] for row in stats(stack, endpoint)["containers"]}
    engine = _engine() if docker else None
    started = int(time.time())
    peak = 0

    def client(mine: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=120)
        for target in mine:
            for _ in range(10):
                status, _ = invoke(conn, endpoint, target, failures)
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
        peak = max(peak, max((r["memory_bytes"] or 0 for r in stats(stack, endpoint)["containers"]), default=0))
        time.sleep(0.5)
    for failure in failures:
        if not failure.startswith("429"):
            print("failed:", failure, file=sys.stderr)
    now = stats(stack, endpoint)
    hits = sum(m["hits"] for m in now["models"])
    misses = sum(m["misses"] for m in now["models"])
    loaded = sum(m["loaded"] for m in now["models"])
    out: dict[str, float | str] = {
        **counts, "hit rate %": 100 * hits / max(hits + misses, 1),
        "loaded at the end": loaded,
        "hit rate % of an ideal LRU that many models large (simulated)": _lru_hit_rate(targets, loaded),
        "peak container MiB (sampled every 0.5 s)": peak / 2**20,
        "instance replaced": "yes" if {r["instance"] for r in now["containers"]} != before else "no",
    }
    if engine is not None:
        out.update(_docker_proof(engine, endpoint, started))
    return out


def _lru_hit_rate(targets: list[str], capacity: int) -> float:
    """The hit rate of the same requests, one at a time, on a cache of ``capacity`` models."""
    cache: dict[str, None] = {}
    hits = 0
    for target in targets:
        if target in cache:
            hits += 1
            del cache[target]
        elif len(cache) >= capacity > 0:
            del cache[next(iter(cache))]
        if capacity > 0:
            cache[target] = None
    return 100 * hits / max(len(targets), 1)


def _engine() -> Any:
    from dockyard.runtime.docker_engine import connect

    return connect()


def _docker_proof(engine: Any, endpoint: str, since: int) -> dict[str, float | str]:
    """What the engine says of the endpoint's multi-model containers: OOM events, flags, peak."""
    from dockyard.runtime import docker_labels

    found = [c for c in engine.containers.list(all=True, filters={"label": f"{docker_labels.ENDPOINT}={endpoint}"})
             if c.labels.get(docker_labels.MULTI_MODEL) == "true"]
    events = engine.events(since=since, until=int(time.time()) + 1, decode=True,
                           filters={"event": "oom", "label": f"{docker_labels.ENDPOINT}={endpoint}"})
    ooms = sum(1 for _ in events)
    peak = max((_cgroup_peak(c.id) or 0 for c in found), default=0)
    limit = max((c.attrs["HostConfig"].get("Memory") or 0 for c in found), default=0)
    return {
        "docker: oom events during the run": str(ooms),
        "docker: containers OOMKilled / restarted": (
            f"{sum(bool(c.attrs['State'].get('OOMKilled')) for c in found)} / "
            f"{sum(int(c.attrs.get('RestartCount') or 0) for c in found)} (of {len(found)})"),
        "docker: cgroup peak MiB / limit MiB": f"{peak / 2**20:.0f} / {limit / 2**20:.0f}",
    }


def _cgroup_peak(container_id: str) -> int | None:
    """The container's memory high-water mark, from its cgroup on this machine."""
    for path in (f"/sys/fs/cgroup/memory/docker/{container_id}/memory.max_usage_in_bytes",
                 f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope/memory.max_usage_in_bytes",
                 f"/sys/fs/cgroup/docker/{container_id}/memory.peak",
                 f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.peak"):
        try:
            return int(Path(path).read_text())
        except (OSError, ValueError):
            continue
    return None

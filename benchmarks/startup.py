"""CreateEndpoint → InService, as a boto3 user sees it, for endpoints of 1, 3 and 15 containers
(the iris model in each, Direct invocation beyond one), and the memory of idle containers."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.markdown import mib, table
from benchmarks.spread import Spread
from benchmarks.stack import DockyardStack


def in_service(
    stack: DockyardStack, tarball: Path, sizes: tuple[int, ...], repeats: int, progress: Callable[[str], None]
) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for size in sizes:
        name = f"bench-start-{size}"
        stack.prepare(name, [tarball] * size, mode=None if size == 1 else "Direct")
        runs, rss = [], []
        for _ in range(repeats):
            runs.append(stack.create_endpoint(name))
            rss += [procs.tree_rss(c.pid) for c in stack.containers(name).values()]
            stack.delete_endpoint(name)
        stack.sm.delete_endpoint_config(EndpointConfigName=name)
        stack.sm.delete_model(ModelName=name)
        out[size] = {"seconds": Spread.of(runs), "container_rss_bytes": statistics.median(rss)}
        progress(f"  {size} container{'s' if size > 1 else ''}: InService in {out[size]['seconds'].text(2)} s")
    return out


def in_service_table(result: dict[int, dict[str, Any]]) -> str:
    return table(
        ["containers", "CreateEndpoint → InService s", "RSS per container just started"],
        [[str(size), r["seconds"].text(2), mib(r["container_rss_bytes"])] for size, r in result.items()],
    )


def memory(stack: DockyardStack, endpoints: dict[str, str]) -> dict[str, int]:
    """Resident bytes of each endpoint's (idle, warmed-up) container, and of the server itself."""
    out = {}
    for label, endpoint in endpoints.items():
        (container,) = stack.containers(endpoint).values()
        out[f"{label} container"] = procs.tree_rss(container.pid)
    out["dockyard serve (control plane + gateway)"] = procs.rss(stack.server_pid())
    return out


def memory_table(result: dict[str, int]) -> str:
    return table(["process", "RSS"], [[label, mib(n)] for label, n in result.items()])

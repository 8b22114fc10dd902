"""The docker runtime next to the process runtime, measured in the same run on the same machine:

- CreateEndpoint → InService as a boto3 user sees it (DescribeEndpoint every 20 ms), the managed
  scikit-learn image already in the engine;
- what the gateway adds on each runtime: one invocation through dockyard vs. the same request
  straight to the container (on docker: the port the instance's sandbox publishes).

``python -m benchmarks.docker_runtime [--quick] [--out docs/benchmarks-docker.md]``; needs a
container engine and ``dockyard images build sklearn``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import fixtures, load
from benchmarks.gateway import MODELS
from benchmarks.markdown import table
from benchmarks.measure import Plan, side_by_side
from benchmarks.run import machine
from benchmarks.spread import Spread, paired, summary
from benchmarks.stack import DockyardStack
from dockyard.runtime.docker import FIRST_PORT, OWNER_LABEL
from dockyard.runtime.docker_engine import connect

RUNTIMES = ("process", "docker")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-docker.md"


@contextlib.contextmanager
def _runtime(name: str) -> Iterator[None]:
    """DockyardStack starts ``dockyard serve`` with this environment: choose its runtime."""
    before = os.environ.get("DOCKYARD_RUNTIME")
    os.environ["DOCKYARD_RUNTIME"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DOCKYARD_RUNTIME")
        else:
            os.environ["DOCKYARD_RUNTIME"] = before


def docker_direct_target(engine: Any, stack: DockyardStack, label: str, endpoint: str) -> load.Target:
    """The endpoint's (only) container through its sandbox's published port; CPU is the container's."""
    owned = engine.containers.list(filters={"label": [f"{OWNER_LABEL}={stack.state_dir.resolve()}",
                                                      f"io.dockyard.endpoint={endpoint}"]})
    sandbox = next(c for c in owned if c.labels["io.dockyard.role"] == "sandbox")
    model = next(c for c in owned if c.labels["io.dockyard.role"] == "container")
    port = sandbox.attrs["NetworkSettings"]["Ports"][f"{FIRST_PORT}/tcp"][0]["HostPort"]
    return load.Target(label, f"http://127.0.0.1:{port}/invocations", fixtures.SAGEMAKER_BODY, fixtures.JSON_HEADERS,
                       model.attrs["State"]["Pid"])


def in_service(stacks: dict[str, DockyardStack], tarball: Path, repeats: int) -> dict[str, Spread]:
    """Seconds from CreateEndpoint to InService, runtimes alternating so drift hits both alike."""
    runs: dict[str, list[float]] = {name: [] for name in stacks}
    for stack in stacks.values():
        stack.prepare("bench-start", [tarball])
    for _ in range(repeats):
        for name, stack in stacks.items():
            runs[name].append(stack.create_endpoint("bench-start"))
            stack.delete_endpoint("bench-start")
    return {name: Spread.of(values) for name, values in runs.items()}


def overhead(stacks: dict[str, DockyardStack], engine: Any, plan: Plan, progress: Any) -> dict[str, Any]:
    targets = []
    for runtime, stack in stacks.items():
        for model, endpoint in MODELS.items():
            direct = (docker_direct_target(engine, stack, f"{runtime} {model} direct", endpoint) if runtime == "docker"
                      else stack.direct_target(f"{runtime} {model} direct", endpoint))
            targets += [direct, stack.invoke_target(f"{runtime} {model} dockyard", endpoint)]
    samples = side_by_side(plan, targets, progress)
    out: dict[str, Any] = {}
    for concurrency, runs in samples.items():
        for runtime in stacks:
            for model in MODELS:
                direct, through = runs[f"{runtime} {model} direct"], runs[f"{runtime} {model} dockyard"]
                out[(runtime, model, concurrency)] = {
                    "direct": summary(direct),
                    "dockyard": summary(through),
                    "added_p50_ms": paired([s.p50_ms for s in through], [s.p50_ms for s in direct]),
                }
    return out


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    start = report["in_service"]
    lines = [
        "# Benchmarks: the docker runtime",
        "",
        (f"Measured {report['date']} with `{report['command']}` on {m['cpus']} CPUs ({m['cpu_model']}), "
         f"{m['memory_gib']} GiB, {m['os']}; Python {m['python']}; engine: {report['engine']}; "
         f"load tool: {report['client']}. Figures are medians over {report['repeats']} runs (range in brackets); "
         "both runtimes were measured in the same run, interleaved."),
        "",
        "## CreateEndpoint → InService",
        "",
        ("The iris model (scikit-learn `LogisticRegression`) on `ml.m5.large`, the managed image already in "
         "the engine; seconds from CreateEndpoint until DescribeEndpoint (polled every 20 ms) says InService."),
        "",
        table(["runtime", "CreateEndpoint → InService s"], [[name, s.text(2)] for name, s in start.items()]),
        "",
        "## Gateway overhead, docker vs process",
        "",
        ("One JSON row per request with keep-alive connections: *direct* goes straight to the container's "
         "port (on docker: the port its instance's sandbox publishes on 127.0.0.1, through the engine's port "
         "forwarding), *dockyard* goes through `/endpoints/{name}/invocations`. *noop* echoes the body, "
         "so HTTP and the gateway are all there is to measure; *iris* runs `predict`. On docker both paths also "
         "cross the engine's port forwarding (`docker-proxy`, a userland process), which competes with the gateway "
         "and the container for the machine's CPUs."),
        "",
        table(
            ["runtime", "model", "conc.", "direct p50 ms", "dockyard p50 ms", "added p50 ms", "direct p99 ms",
             "dockyard p99 ms", "direct req/s", "dockyard req/s"],
            [[runtime, model, str(conc), r["direct"]["p50_ms"].text(3), r["dockyard"]["p50_ms"].text(3),
              r["added_p50_ms"].text(3), r["direct"]["p99_ms"].text(3), r["dockyard"]["p99_ms"].text(3),
              r["direct"]["rps"].text(0), r["dockyard"]["rps"].text(0)]
             for (runtime, model, conc), r in report["overhead"].items()],
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.docker_runtime", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs, one repeat")
    p.add_argument("--repeats", type=int, help="runs per figure (default 5, quick 1)")
    p.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the Markdown goes")
    args = p.parse_args(argv)
    tool = load.pick_tool(args.client)
    repeats = args.repeats or (1 if args.quick else 5)
    duration = 0.3 if args.quick else 2.0
    if tool == "wrk":  # wrk counts time in whole seconds
        duration = float(math.ceil(duration))
    plan = Plan(tool=tool, concurrencies=(1, 8), duration=duration, warmup=0.2 if args.quick else 0.5, repeats=repeats)
    engine = connect()
    version = engine.version()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.docker_runtime " + " ".join(argv),
        "machine": machine(),
        "engine": f"{version.get('Platform', {}).get('Name', 'engine')} {version.get('Version', '')}".strip(),
        "client": load.tool_version(tool),
        "repeats": repeats,
    }
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-docker-") as tmp, contextlib.ExitStack() as stacks_open:
        root = Path(tmp)
        models = root / "models"
        tarballs = {"noop": fixtures.tarball(fixtures.noop_model_dir(models)),
                    "iris": fixtures.tarball(fixtures.iris_model_dir(models))}
        stacks = {}
        for runtime in RUNTIMES:
            (root / runtime).mkdir()
            with _runtime(runtime):
                stacks[runtime] = stacks_open.enter_context(DockyardStack(root / runtime))
        progress("CreateEndpoint → InService")
        report["in_service"] = in_service(stacks, tarballs["iris"], repeats)
        progress("  " + ", ".join(f"{n}: {s.text(2)} s" for n, s in report["in_service"].items()))
        for stack in stacks.values():
            for model, endpoint in MODELS.items():
                stack.deploy(endpoint, [tarballs[model]])
        progress("gateway overhead: through dockyard vs straight to the container")
        clock = time.perf_counter()
        report["overhead"] = overhead(stacks, engine, plan, progress)
        progress(f"  measured in {time.perf_counter() - clock:.0f} s")
    markdown = render(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    print(markdown)
    progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The benchmark command: start dockyard, deploy the fixtures, measure every section, write
``results/benchmarks-<time>.md`` and ``.json`` and print the Markdown.

``--quick`` is the smoke test CI runs: short runs, one repeat, no peers, no 15-container start.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import platformdirs

from benchmarks import compare, fixtures, forks, gateway, load, startup
from benchmarks import report as reporting
from benchmarks.measure import Plan
from benchmarks.report import ONE_WRITE, PYTHON_CLIENT
from benchmarks.spread import to_json
from benchmarks.stack import DockyardStack

SECTIONS = ("gateway", "serial", "startup", "memory", "peers", "forks")
RESULTS = Path(__file__).with_name("results")
MANY_CONTAINERS = 15


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: short runs, one repeat, no peers")
    p.add_argument("--duration", type=float, help="seconds per run (full 2, quick 0.3)")
    p.add_argument("--warmup", type=float, help="seconds of unrecorded load per target and concurrency")
    p.add_argument("--repeats", type=int, help="runs per figure; the spread is over these (full 5, quick 1)")
    p.add_argument("--concurrency", help="comma-separated connection counts (full 1,8,32; quick 1,8)")
    p.add_argument("--sizes", help="containers per endpoint for InService (full 1,3,15; quick 1)")
    p.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto",
                   help="load tool (auto: wrk if installed); the gateway section also runs benchmarks.pyclient at c=1")
    p.add_argument("--only", help=f"comma-separated sections to run, of {','.join(SECTIONS)}")
    p.add_argument("--no-peers", action="store_true", help="skip MLServer and KServe")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="also run the dockyard package found in DIR (another checkout's src/) as a second server "
                        "and load its gateway side by side in the gateway section")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the .md and .json (default benchmarks/results)")
    p.add_argument("--cache", type=Path, default=Path(platformdirs.user_cache_dir("dockyard")) / "benchmarks",
                   help="where the peers' virtualenvs are kept")
    return p.parse_args(argv)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _uvloop() -> str:
    """uvloop's version if dockyard (run with this environment) will use it."""
    try:
        import uvloop
    except ImportError:
        return "not installed (asyncio's event loop)"
    return uvloop.__version__


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": _package("aiohttp"),
        "uvloop": _uvloop(),
        "scikit-learn": _package("scikit-learn"),
    }


def make_plan(args: argparse.Namespace, tool: str) -> Plan:
    """Durations, repeats and concurrencies: the options, else the quick or full defaults."""
    quick = args.quick
    duration = args.duration or (0.3 if quick else 2.0)
    warmup = args.warmup if args.warmup is not None else (0.2 if quick else 0.5)
    if tool == "wrk":  # wrk counts time in whole seconds
        duration, warmup = float(math.ceil(duration)), float(math.ceil(warmup))
    return Plan(
        tool=tool,
        concurrencies=_ints(args.concurrency or ("1,8" if quick else "1,8,32")),
        duration=duration,
        warmup=warmup,
        repeats=args.repeats or (1 if quick else 5),
    )


def measure(args: argparse.Namespace, plan: Plan, sections: set[str], sizes: tuple[int, ...]) -> dict[str, Any]:
    """Start dockyard, deploy the fixtures and run each chosen section; the sections' results."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        root = Path(tmp)
        noop, iris = fixtures.noop_model_dir(root / "models"), fixtures.iris_model_dir(root / "models")
        tarballs = {"noop": fixtures.tarball(noop), "iris": fixtures.tarball(iris)}
        if "forks" in sections:
            progress("fork server vs spawn: two servers side by side")
            results["forks"] = forks.run(root / "forks", tarballs["iris"], 1 if args.quick else 3,
                                         MANY_CONTAINERS in sizes, progress)
            if sections == {"forks"}:
                return results
        progress(f"dockyard: starting a server and deploying the fixtures (load tool: {load.tool_version(plan.tool)})")
        with contextlib.ExitStack() as stacks:
            stack = stacks.enter_context(DockyardStack(root))
            baseline = None
            if args.baseline is not None and "gateway" in sections:
                baseline = stacks.enter_context(DockyardStack(root / "baseline", source=args.baseline))
            try:
                for model, endpoint in gateway.MODELS.items():
                    for server in filter(None, (stack, baseline)):
                        server.deploy(endpoint, [tarballs[model]])
                if "gateway" in sections:
                    progress("gateway overhead: through dockyard vs straight to the container")
                    results["gateway"] = gateway.overhead(stack, plan, progress, baseline=baseline)
                    for section, client in ((PYTHON_CLIENT, load.HTTP_CLIENT), (ONE_WRITE, load.ONE_WRITE)):
                        progress(f"gateway overhead with {load.tool_version(client)}")
                        results[section] = gateway.overhead(
                            stack, dataclasses.replace(plan, tool=client, concurrencies=(1,)), progress,
                            models={"noop": gateway.MODELS["noop"]}, baseline=baseline,
                        )
                if "serial" in sections:
                    progress("serial pipelines: added latency per container")
                    lengths = (2,) if args.quick else (2, 3)
                    results["serial"] = gateway.serial(stack, plan, tarballs["noop"], lengths, progress)
                if "peers" in sections:
                    progress("peers: the same model in MLServer and KServe")
                    results["peers"] = compare.run(stack, plan, iris, args.cache, root, progress)
                if "memory" in sections:
                    results["memory"] = startup.memory(stack, {"noop": "bench-noop", "iris (sklearn)": "bench-iris"})
                if "startup" in sections:
                    progress("CreateEndpoint → InService")
                    repeats = 1 if args.quick else 3
                    results["startup"] = startup.in_service(stack, tarballs["iris"], sizes, repeats, progress)
            except Exception:
                for server in filter(None, (stack, baseline)):
                    progress(f"dockyard server log ({server.url}, tail):\n" + server.log_tail())
                raise
    return results


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    args = parse(argv)
    tool = load.pick_tool(args.client)
    plan = make_plan(args, tool)
    sizes = _ints(args.sizes or ("1" if args.quick else "1,3,15"))
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = sections - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.quick or args.no_peers:
        sections.discard("peers")
    started = datetime.now(timezone.utc)
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + " ".join(argv),
        "machine": machine(),
        "client": load.tool_version(tool),
        "plan": {"concurrencies": plan.concurrencies, "duration_s": plan.duration, "warmup_s": plan.warmup,
                 "repeats": plan.repeats, "sizes": sizes},
        # Other work on the machine shows here: the figures are only as quiet as the machine was.
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
    }
    clock = time.perf_counter()
    report["sections"] = measure(args, plan, sections, sizes)
    report["seconds"] = round(time.perf_counter() - clock, 1)
    report["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = reporting.check(report["sections"])
    markdown = reporting.render(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"benchmarks-{started.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(to_json(report), indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)
    progress(f"wrote {stem}.md and {stem}.json in {report['seconds']:.0f} s")
    return 0

"""What the gateway adds: one invocation through dockyard vs. the same request straight to the
same container's port (read from the container process's ``SAGEMAKER_BIND_TO_PORT``), and the
latency each extra container of a Serial pipeline adds.

With a baseline (``--baseline``: another checkout's dockyard, run as a second server), its gateway
is loaded in the same interleaved runs, so its CPU and latency pair with this one's per repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.markdown import table
from benchmarks.measure import Plan, side_by_side
from benchmarks.spread import Spread, paired, ratios, summary
from benchmarks.stack import DockyardStack

MODELS = {"noop": "bench-noop", "iris": "bench-iris"}


def overhead(
    stack: DockyardStack, plan: Plan, progress: Callable[[str], None],
    models: dict[str, str] = MODELS, baseline: DockyardStack | None = None,
) -> dict[str, Any]:
    """Per model and concurrency: direct vs. dockyard (and the baseline), and the paired differences."""
    targets = []
    for model, endpoint in models.items():
        targets += [stack.direct_target(f"{model} direct", endpoint), stack.invoke_target(f"{model} dockyard", endpoint)]
        if baseline is not None:
            targets.append(baseline.invoke_target(f"{model} baseline", endpoint))
    samples = side_by_side(plan, targets, progress)
    out: dict[str, Any] = {}
    for model in models:
        for concurrency, runs in samples.items():
            direct, through = runs[f"{model} direct"], runs[f"{model} dockyard"]
            row = out.setdefault(model, {})[concurrency] = {
                "direct": summary(direct),
                "dockyard": summary(through),
                "overhead_p50_ms": paired([s.p50_ms for s in through], [s.p50_ms for s in direct]),
                "overhead_p99_ms": paired([s.p99_ms for s in through], [s.p99_ms for s in direct]),
                "throughput_ratio": ratios([s.rps for s in through], [s.rps for s in direct]),
            }
            if baseline is not None:
                old = runs[f"{model} baseline"]
                row["baseline"] = summary(old)
                row["baseline_overhead_p50_ms"] = paired([s.p50_ms for s in old], [s.p50_ms for s in direct])
                row["cpu_ratio_to_baseline"] = ratios([s.cpu_us or 0.0 for s in through], [s.cpu_us or 0.0 for s in old])
    return out


def baseline_table(result: dict[str, Any]) -> str:
    """This gateway against the baseline's, paired per repeat; empty without a baseline."""
    rows = []
    for model, by_concurrency in result.items():
        for concurrency, r in by_concurrency.items():
            if "baseline" in r:
                rows.append([
                    model, str(concurrency), _cpu(r["baseline"]), _cpu(r["dockyard"]), r["cpu_ratio_to_baseline"].text(2),
                    r["baseline_overhead_p50_ms"].text(3), r["overhead_p50_ms"].text(3),
                    r["baseline"]["rps"].text(0), r["dockyard"]["rps"].text(0),
                ])
    if not rows:
        return ""
    return table(
        ["model", "conc.", "baseline gateway CPU µs/req", "gateway CPU µs/req", "CPU this / baseline",
         "baseline added p50 ms", "added p50 ms", "baseline req/s", "req/s"],
        rows,
    )


def overhead_table(result: dict[str, Any]) -> str:
    rows = []
    for model, by_concurrency in result.items():
        for concurrency, r in by_concurrency.items():
            d, g = r["direct"], r["dockyard"]
            rows.append([
                model, str(concurrency),
                d["p50_ms"].text(3), g["p50_ms"].text(3), r["overhead_p50_ms"].text(3),
                d["p99_ms"].text(3), g["p99_ms"].text(3), r["overhead_p99_ms"].text(3),
                d["rps"].text(0), g["rps"].text(0), r["throughput_ratio"].text(2),
                _cpu(d), _cpu(g),
            ])
    return table(
        ["model", "conc.", "direct p50 ms", "dockyard p50 ms", "added p50 ms", "direct p99 ms", "dockyard p99 ms",
         "added p99 ms", "direct req/s", "dockyard req/s", "dockyard / direct", "container CPU µs/req",
         "gateway CPU µs/req"],
        rows,
    )


def _cpu(figures: dict[str, Any]) -> str:
    spread = figures.get("cpu_us_per_request")
    return spread.text(0) if spread else "—"


def serial(
    stack: DockyardStack, plan: Plan, noop_tarball, lengths: tuple[int, ...], progress: Callable[[str], None]
) -> dict[str, Any]:
    """Serial endpoints of 2.. echo containers vs. one echo container, all through dockyard; the
    direct round trip to the single container is the containers' own time."""
    names = {n: f"bench-serial-{n}" for n in lengths}
    for n, name in names.items():
        stack.deploy(name, [noop_tarball] * n, mode="Serial")
    try:
        targets = [stack.direct_target("direct", MODELS["noop"]), stack.invoke_target("1 container", MODELS["noop"])]
        targets += [stack.invoke_target(f"{n} containers", name) for n, name in names.items()]
        samples = side_by_side(plan, targets, progress)
    finally:
        for name in names.values():
            stack.delete(name)
    out: dict[str, Any] = {}
    for concurrency, runs in samples.items():
        single = [s.p50_ms for s in runs["1 container"]]
        direct = [s.p50_ms for s in runs["direct"]]
        row: dict[str, Any] = {"direct_p50_ms": Spread.of(direct), "single_p50_ms": Spread.of(single)}
        for n in lengths:
            chain = [s.p50_ms for s in runs[f"{n} containers"]]
            hop = [(c - s) / (n - 1) for c, s in zip(chain, single)]
            row[n] = {
                "p50_ms": Spread.of(chain),
                "p99_ms": Spread.of(s.p99_ms for s in runs[f"{n} containers"]),
                "per_hop_ms": Spread.of(hop),
                "per_hop_beyond_container_ms": paired(hop, direct),
            }
        out[concurrency] = row
    return out


def serial_table(result: dict[str, Any]) -> str:
    rows = []
    for concurrency, row in result.items():
        for n, r in row.items():
            if not isinstance(n, int):
                continue
            rows.append([
                str(concurrency), str(n), row["direct_p50_ms"].text(3), row["single_p50_ms"].text(3),
                r["p50_ms"].text(3), r["p99_ms"].text(3), r["per_hop_ms"].text(3), r["per_hop_beyond_container_ms"].text(3),
            ])
    return table(
        ["conc.", "containers", "container direct p50 ms", "1 container p50 ms", "pipeline p50 ms", "pipeline p99 ms",
         "added per hop ms", "per hop beyond the container's own time ms"],
        rows,
    )

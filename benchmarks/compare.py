"""dockyard next to its peers: the same iris ``model.joblib``, the same machine, the same load
client, each server speaking its own JSON protocol for one row.

The dockyard rows are its managed scikit-learn container straight on its port (server against
server) and the full path through the gateway (what a SageMaker client sees).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import peers, procs
from benchmarks.markdown import mib, table
from benchmarks.measure import Plan, side_by_side
from benchmarks.spread import paired, ratios, summary
from benchmarks.stack import DockyardStack

DIRECT = "dockyard (container)"
GATEWAY = "dockyard (through gateway)"


def run(
    stack: DockyardStack, plan: Plan, model_dir: Path, cache: Path, root: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    running: list[peers.RunningPeer] = []
    unavailable: dict[str, str] = {}
    for spec in peers.specs():
        try:
            progress(f"  {spec.label}: installing into {cache / 'venvs'} (once) and starting")
            python = peers.ensure_venv(cache, spec)
            running.append(peers.STARTERS[spec.key](spec, python, model_dir, root))
        except peers.PeerError as exc:
            unavailable[spec.label] = str(exc)
            progress(f"  {spec.label} unavailable: {exc}")
    try:
        (container,) = stack.containers("bench-iris").values()
        targets = [stack.direct_target(DIRECT, "bench-iris"), stack.invoke_target(GATEWAY, "bench-iris")]
        targets += [p.target for p in running]
        samples = side_by_side(plan, targets, progress)
        memory = {DIRECT: procs.tree_rss(container.pid), **{p.spec.label: procs.tree_rss(p.proc.pid) for p in running}}
    finally:
        for peer in running:
            peer.stop()
    by_concurrency: dict[int, Any] = {}
    for concurrency, runs in samples.items():
        row: dict[str, Any] = {name: summary(s) for name, s in runs.items()}
        for peer in running:
            theirs = runs[peer.spec.label]
            row[f"vs {peer.spec.label}"] = {
                side: {
                    "throughput_ratio": ratios([s.rps for s in runs[side]], [s.rps for s in theirs]),
                    "p99_difference_ms": paired([s.p99_ms for s in runs[side]], [s.p99_ms for s in theirs]),
                }
                for side in (DIRECT, GATEWAY)
            }
        by_concurrency[concurrency] = row
    return {
        "servers": {
            DIRECT: {"idle_rss_bytes": memory[DIRECT]},
            **{p.spec.label: {"idle_rss_bytes": memory[p.spec.label], "start_to_ready_s": p.ready_seconds,
                              "requirements": list(p.spec.requirements)} for p in running},
        },
        "unavailable": unavailable,
        "by_concurrency": by_concurrency,
    }


def tables(result: dict[str, Any]) -> str:
    rows = []
    for concurrency, row in result["by_concurrency"].items():
        for name, figures in row.items():
            if name.startswith("vs "):
                continue
            rows.append([str(concurrency), name, figures["p50_ms"].text(3), figures["p99_ms"].text(3), figures["rps"].text(0)])
    out = [table(["conc.", "server", "p50 ms", "p99 ms", "req/s"], rows)]
    ratio_rows = []
    for concurrency, row in result["by_concurrency"].items():
        for name, sides in row.items():
            if name.startswith("vs "):
                for side, r in sides.items():
                    ratio_rows.append([str(concurrency), side, name[3:], r["throughput_ratio"].text(2), r["p99_difference_ms"].text(3)])
    if ratio_rows:
        out.append(table(["conc.", "dockyard", "peer", "throughput ratio", "p99 difference ms (− = dockyard better)"], ratio_rows))
    servers = result["servers"]
    out.append(table(
        ["server", "RSS idle after the load", "process start → ready s"],
        [[name, mib(s["idle_rss_bytes"]), f"{s['start_to_ready_s']:.2f}" if "start_to_ready_s" in s else "see InService"]
         for name, s in servers.items()],
    ))
    for label, reason in result["unavailable"].items():
        out.append(f"{label} could not run: {reason.splitlines()[0]}")
    return "\n\n".join(out)

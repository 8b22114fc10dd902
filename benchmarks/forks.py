"""The process runtime's fork server against spawning, side by side in one run (issue 18 §1).

Two servers run together, one forking managed containers from a pre-warmed zygote (the default)
and one spawning each (``DOCKYARD_FORK_SERVER=false``); every figure alternates between them so
that the machine's load falls on both alike. Measured: the first scikit-learn endpoint (the fork
server starts then), one container's CreateEndpoint → InService once it is warm, a 15-container
Direct endpoint, and the proportional memory (PSS) of those 15 idle containers — the zygote's
counted in for the fork server, as it exists only for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.markdown import mib, table
from benchmarks.spread import Spread, ratios
from benchmarks.stack import DockyardStack
from dockyard.runtime.processes import owned_pids
from dockyard.runtime.zygote import ZYGOTE_NAME

MODES = {"fork": {}, "spawn": {"DOCKYARD_FORK_SERVER": "false"}}
MANY = 15


def _zygotes(stack: DockyardStack) -> list[int]:
    found = []
    for pid in owned_pids(str(stack.state_dir.resolve())):
        try:
            if Path(f"/proc/{pid}/comm").read_bytes().strip() == ZYGOTE_NAME:
                found.append(pid)
        except OSError:
            continue
    return found


def _start(stack: DockyardStack, name: str, tarball: Path, size: int) -> float:
    stack.prepare(name, [tarball] * size, mode=None if size == 1 else "Direct")
    return stack.create_endpoint(name)


def _memory(stack: DockyardStack, name: str) -> int:
    """PSS of the endpoint's containers (their inference workers included) and of the zygotes."""
    pids = [c.pid for c in stack.containers(name).values()] + _zygotes(stack)
    return sum(procs.tree_pss(pid) for pid in pids)


def run(root: Path, tarball: Path, repeats: int, many: bool, progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {mode: {"one": [], "many": [], "pss": []} for mode in MODES}
    allow = {"DOCKYARD_ALLOW_PATHS": str(tarball.parent.resolve())}  # the fixtures are not beside root
    with DockyardStack(root / "fork", settings={**allow, **MODES["fork"]}) as fork, \
            DockyardStack(root / "spawn", settings={**allow, **MODES["spawn"]}) as spawn:
        stacks = {"fork": fork, "spawn": spawn}
        for mode, stack in stacks.items():  # the fork server starts with its first container
            out[mode]["first"] = _start(stack, "bench-first", tarball, 1)
            stack.delete("bench-first")
        progress(f"  first endpoint: fork {out['fork']['first']:.2f} s, spawn {out['spawn']['first']:.2f} s")
        for i in range(repeats):
            for mode, stack in stacks.items():
                out[mode]["one"].append(_start(stack, f"bench-one-{i}", tarball, 1))
                stack.delete(f"bench-one-{i}")
        progress(f"  1 container: fork {Spread.of(out['fork']['one']).text()} s, "
                 f"spawn {Spread.of(out['spawn']['one']).text()} s")
        for i in range(repeats if many else 0):
            for mode, stack in stacks.items():  # one at a time: PSS divides pages among all mappers
                name = f"bench-many-{i}"
                out[mode]["many"].append(_start(stack, name, tarball, MANY))
                out[mode]["pss"].append(_memory(stack, name))
                stack.delete(name)
            progress(f"  {MANY} containers: fork {out['fork']['many'][-1]:.2f} s, {mib(out['fork']['pss'][-1])}; "
                     f"spawn {out['spawn']['many'][-1]:.2f} s, {mib(out['spawn']['pss'][-1])}")
    result: dict[str, Any] = {}
    for mode in MODES:
        result[mode] = {key: Spread.of(values) for key, values in out[mode].items() if key != "first" and values}
        result[mode]["first"] = Spread.of([out[mode]["first"]])
    for key in ("one", "many", "pss"):
        if out["fork"][key]:
            result.setdefault("ratio", {})[key] = ratios(out["fork"][key], out["spawn"][key])
    return result


def forks_table(result: dict[str, Any]) -> str:
    def cell(mode: str, key: str, fmt: Callable[[float], str]) -> str:
        spread = result[mode].get(key)
        if spread is None:
            return "—"
        return fmt(spread.median) if spread.low == spread.high else f"{fmt(spread.median)} ({fmt(spread.low)}–{fmt(spread.high)})"

    def seconds(x: float) -> str:
        return f"{x:.2f} s"

    rows = [
        ["first sklearn endpoint, CreateEndpoint → InService", "first", seconds],
        ["1 container, CreateEndpoint → InService (warm)", "one", seconds],
        [f"{MANY}-container Direct endpoint, CreateEndpoint → InService", "many", seconds],
        [f"PSS of {MANY} idle containers (+ zygote)", "pss", mib],
    ]
    ratio = result.get("ratio", {})
    return table(
        ["figure", "fork server", "spawn", "fork ÷ spawn"],
        [[label, cell("fork", key, fmt), cell("spawn", key, fmt), ratio[key].text(2) if key in ratio else "—"]
         for label, key, fmt in rows],
    )

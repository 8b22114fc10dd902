"""Side-by-side measurement: every target at every concurrency, interleaved, repeated.

Within a repeat the targets run back to back (order reversed on every other repeat), so slow
drift of a shared machine hits all sides alike and figures can be paired per repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import load
from benchmarks.load import Sample, Target
from benchmarks.spread import Spread


@dataclass(frozen=True)
class Plan:
    """How long and how often: the quick mode and the full run differ only here."""

    tool: str
    concurrencies: tuple[int, ...]
    duration: float
    warmup: float
    repeats: int


Samples = dict[int, dict[str, list[Sample]]]
"""concurrency → target name → one Sample per repeat."""


def side_by_side(plan: Plan, targets: list[Target], progress=print) -> Samples:
    for target in targets:
        load.check(target)
    out: Samples = {}
    for concurrency in plan.concurrencies:
        runs: dict[str, list[Sample]] = {t.name: [] for t in targets}
        if plan.warmup > 0:
            for target in targets:
                load.run(plan.tool, target, concurrency, plan.warmup)
        for repeat in range(plan.repeats):
            order = targets if repeat % 2 == 0 else targets[::-1]
            for target in order:
                runs[target.name].append(load.run(plan.tool, target, concurrency, plan.duration))
        out[concurrency] = runs
        progress(
            f"  c={concurrency}: "
            + ", ".join(f"{name} p50 {Spread.of(x.p50_ms for x in s).median:.2f} ms" for name, s in runs.items())
        )
    return out

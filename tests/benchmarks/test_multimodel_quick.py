"""The multi-model benchmark's quick mode runs to its end and reports every figure (none is
checked: timings on a shared machine are noise)."""

from __future__ import annotations

from bench_tables import table_rows


def test_multimodel_benchmark_reports_each_figure() -> None:
    rows = table_rows("multimodel", "--quick")
    assert rows == [
        "warm hit", "single-model endpoint", "multi-model, TargetModel loaded", "difference",
        "cold load (invoke → answer)", "dockyard (process): not downloaded", "dockyard (process): already unpacked",
        "60 Zipf(s=1.1) requests, 200 models, ~20 fit", "failed", "retried 429", "hit rate %", "loaded at the end",
        "hit rate % of an ideal LRU that many models large (simulated)",
        "peak container MiB (sampled every 0.5 s)", "instance replaced",
    ]

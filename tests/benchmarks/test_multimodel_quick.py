"""The multi-model benchmark's quick mode runs to its end and reports every figure (none is
checked: timings on a shared machine are noise)."""

from __future__ import annotations

from bench_tables import table_rows


def test_multimodel_benchmark_reports_each_figure() -> None:
    rows = table_rows("multimodel", "--quick")
    assert rows == [
        "warm hit", "single-model endpoint", "multi-model, TargetModel loaded", "difference",
        "cold load (invoke → answer)", "dockyard: not downloaded", "dockyard: already unpacked",
        "60 Zipf(s=1.1) requests, 200 models, ~20 fit", "failed", "retried 429", "hit rate %", "loaded at the end",
        "peak container MiB (sampled every 0.5 s)", "instance replaced",
    ]

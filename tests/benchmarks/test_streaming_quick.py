"""The streaming benchmark runs to its end and reports every path (no figure is checked: timings
on a shared machine are noise)."""

from __future__ import annotations

from bench_tables import table_rows


def test_streaming_benchmark_reports_each_path() -> None:
    rows = table_rows("streaming", "--rounds", "2")
    assert rows == ["path", "container direct", "through dockyard (raw)", "through dockyard (boto3)"]

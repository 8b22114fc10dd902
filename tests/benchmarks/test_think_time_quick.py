"""The think-time benchmark runs to its end and reports each think time, for the pipe round trip
and for the three targets (no figure is checked: timings on a shared machine are noise)."""

from __future__ import annotations

import os

import pytest
from bench_tables import table_rows


@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="the benchmark times CPUs 0 and 1 against each other")
def test_think_time_benchmark_reports_each_gap() -> None:
    rows = table_rows("think_time", "--gaps", "0,50", "--requests", "50", "--rounds", "1")
    assert rows == ["think time µs", "0", "50", "think time µs", "0", "50"]

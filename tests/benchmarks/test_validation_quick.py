"""The validation benchmark runs and reports each request (no figure is checked: timings on a
shared machine are noise)."""

from __future__ import annotations

from bench_tables import table_rows


def test_validation_benchmark_reports_each_request() -> None:
    rows = table_rows("validation", "--calls", "10", "--rounds", "2")
    assert rows == ["request", "CreateModel, one container", "CreateModel, 5 containers and 10 tags"]

"""The streaming benchmark runs to its end and reports every path (no figure is checked: timings
on a shared machine are noise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_streaming_benchmark_reports_each_path() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.streaming", "--rounds", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["path", "container direct", "through dockyard (raw)", "through dockyard (boto3)"]

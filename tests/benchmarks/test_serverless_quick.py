"""The serverless cold-start benchmark runs to its end and reports both container starts (no
figure is checked: timings on a shared machine are noise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_serverless_benchmark_reports_cold_and_warm() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.serverless", "--rounds", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["container start", "forked (fork server)", "new interpreter"]

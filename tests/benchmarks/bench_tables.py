"""Running one benchmark module as the docs say (``python -m benchmarks.<name>`` from the checkout)
and reading the first column of the Markdown table it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def table_rows(module: str, *args: str) -> list[str]:
    """The first cell of each table row ``python -m benchmarks.<module> *args`` prints."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ")]

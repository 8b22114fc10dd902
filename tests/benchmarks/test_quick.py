"""The benchmark suite's quick mode, as CI runs it: it completes and writes a well-formed report.

No figure is checked: timings on a shared machine are noise. What is checked is that every
section ran and that the Markdown and the JSON say the same things.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_mode_writes_markdown_and_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    (json_path,) = tmp_path.glob("benchmarks-*-quick.json")
    (md_path,) = tmp_path.glob("benchmarks-*-quick.md")
    report = json.loads(json_path.read_text())
    assert set(report["sections"]) == {"gateway", "serial", "startup", "memory"}
    assert report["machine"]["cpus"] >= 1
    for model in ("noop", "iris"):
        for figures in report["sections"]["gateway"][model].values():
            for side in ("direct", "dockyard"):
                assert {"p50_ms", "p99_ms", "rps", "cpu_us_per_request"} == set(figures[side])
                assert set(figures[side]["p50_ms"]) == {"median", "min", "max"}
    assert report["sections"]["startup"]["1"]["seconds"]["median"] > 0
    assert report["targets"] and all(t["met"] in (True, False) for t in report["targets"])

    markdown = md_path.read_text()
    assert markdown == proc.stdout
    assert "## Targets" in markdown and "## Gateway overhead" in markdown
    for target in report["targets"]:
        assert target["target"] in markdown

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
        # This checkout as its own baseline: the second server and the paired figures are built.
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path), "--baseline", str(REPO / "src")],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    (json_path,) = tmp_path.glob("benchmarks-*-quick.json")
    (md_path,) = tmp_path.glob("benchmarks-*-quick.md")
    report = json.loads(json_path.read_text())
    assert set(report["sections"]) == {"gateway", "gateway_http_client", "gateway_http_client_one_write", "serial", "startup", "memory", "forks"}
    assert report["machine"]["cpus"] >= 1
    for model in ("noop", "iris"):
        for figures in report["sections"]["gateway"][model].values():
            for side in ("direct", "dockyard"):
                assert {"p50_ms", "p99_ms", "rps", "cpu_us_per_request"} == set(figures[side])
                assert set(figures[side]["p50_ms"]) == {"median", "min", "max"}
            assert figures["cpu_ratio_to_baseline"]["median"] > 0
    # The client that sends like boto3 loads the same gateway at concurrency 1.
    assert set(report["sections"]["gateway_http_client"]) == {"noop"}
    assert set(report["sections"]["gateway_http_client"]["noop"]) == {"1"}
    assert report["sections"]["gateway_http_client"]["noop"]["1"]["dockyard"]["rps"]["median"] > 0
    assert report["sections"]["startup"]["1"]["seconds"]["median"] > 0
    # The fork server and spawn, side by side: the warm start of each and their ratio.
    for mode in ("fork", "spawn"):
        assert report["sections"]["forks"][mode]["one"]["median"] > 0
    assert report["sections"]["forks"]["ratio"]["one"]["median"] > 0
    assert report["targets"] and all(t["met"] in (True, False) for t in report["targets"])

    markdown = md_path.read_text()
    assert markdown == proc.stdout
    assert markdown.count("Against the baseline") == 3
    assert "## Targets" in markdown and "## Gateway overhead" in markdown and "## Gateway overhead as boto3 sends" in markdown
    for target in report["targets"]:
        assert target["target"] in markdown

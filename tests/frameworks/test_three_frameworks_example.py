"""The worked example: TensorFlow, PyTorch and scikit-learn on one Direct endpoint, each reached
by TargetContainerHostname — ``examples/three_frameworks_direct.py`` run as a script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from needs import require

ROOT = Path(__file__).resolve().parents[2]
IRIS_CLASSES = [0, 0, 1, 1, 2, 2, 2]  # of the rows the example asks about


@pytest.mark.slow
def test_three_frameworks_on_one_direct_endpoint(server, sm):
    for module in ("torch", "tensorflow", "keras"):
        require(module)
    out = subprocess.run([sys.executable, "examples/three_frameworks_direct.py"], cwd=ROOT, capture_output=True, check=False,
                         text=True, timeout=300, env={**os.environ, "DOCKYARD_URL": server.url})
    assert out.returncode == 0, out.stderr[-3000:]
    answers = {a["container"]: a for a in map(json.loads, out.stdout.strip().splitlines())}
    assert set(answers) == {"sklearn", "pytorch", "tensorflow"}
    for host, answer in answers.items():
        assert answer["endpoint"] == answer["local"] == IRIS_CLASSES, host
    # The example cleans up after itself.
    assert "three-frameworks" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]

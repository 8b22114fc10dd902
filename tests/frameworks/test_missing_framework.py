"""A managed image whose framework cannot be imported ends Failed, telling the user which extra
to install. The framework is hidden for real: a second server runs with a ``PYTHONPATH`` whose
``xgboost`` package raises ImportError, as a missing package does."""

from __future__ import annotations

import pytest
from e2e.deploy import create_endpoint, wait_settled
from needs import require
from servers import Server

from frameworks.models import XGBOOST_URI, package


@pytest.fixture
def hidden_xgboost_server(tmp_path):
    stub = tmp_path / "stub" / "xgboost"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("No module named \'xgboost\'")\n')
    server = Server(tmp_path / "state", tmp_path / "server.log", {"PYTHONPATH": str(stub.parent)}).start()
    try:
        yield server.client("sagemaker")
    finally:
        server.stop()


def test_missing_framework_fails_naming_the_extra(hidden_xgboost_server, tmp_path):
    require("xgboost")  # installed, so that only the import fails (not installed is refused earlier)
    sm = hidden_xgboost_server
    url = package(tmp_path, "model", lambda d: (d / "xgboost-model").write_text("{}"))
    create_endpoint(sm, "no-xgboost", {"PrimaryContainer": {"Image": XGBOOST_URI, "ModelDataUrl": url}}, wait=False)
    desc = wait_settled(sm, "no-xgboost")
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("The primary container for production variant AllTraffic exited with code 1")
    assert reason.rstrip().endswith(
        "dockyard.serving: framework xgboost is not installed: No module named 'xgboost'; "
        "pip install 'dockyard[xgboost]'")

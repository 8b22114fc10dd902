"""What only the docker runtime has — logs and stats from the engine — and tests/e2e's failure
cases collected again against a ``dockyard serve --runtime docker`` with the managed scikit-learn
image. The foundation flow on docker is tests/e2e/test_smoke.py's docker parameter."""

from __future__ import annotations

import json
import urllib.request

import pytest
from e2e.deploy import create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package
from e2e.test_failures import (  # noqa: F401  (collected again, on docker)
    test_archive_escaping_the_model_directory_is_refused,
    test_missing_model_data_fails_naming_the_path,
    test_model_without_a_model_file_fails_quoting_the_container_log,
)

pytestmark = pytest.mark.docker


def test_logs_and_stats_come_from_the_engine(sm, rt, server, tmp_path):
    tarball = package(tmp_path, iris_classifier())
    create_endpoint(sm, "observed", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    rt.invoke_endpoint(EndpointName="observed", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")

    stats = json.load(urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/observed/stats"))
    [row] = stats["containers"]
    assert row["container"] == "primary" and row["count"] >= 1
    assert row["cpu_percent"] is not None and row["cpu_percent"] >= 0
    assert 10 * 2**20 < row["memory_bytes"] < 8 * 2**30  # the model server, well inside ml.m5.large's 8 GiB

    logs = json.load(urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/observed/logs?lines=50"))
    [entry] = logs["logs"]
    assert entry["container"] == "primary"
    assert any("8080" in line for line in entry["lines"]), entry["lines"]  # the server says where it listens
    sm.delete_endpoint(EndpointName="observed")

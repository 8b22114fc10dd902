"""A multi-model instance's memory on the docker runtime: what a model's load adds to the
container is read from the container's cgroup (``Runtime.resident_memory``) before and after the
load, and shown by ``dockyard stats --models``; the platform's unloading decisions rest on it."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, iris_classifier, package

from dockyard.runtime.docker_engine import cgroup_memory

pytestmark = pytest.mark.docker

# 64 MiB, every page touched.
HOARDING_INFERENCE = """
import numpy as np

def model_fn(model_dir):
    return np.ones(64 * 2**17)

def predict_fn(data, model):
    return [len(model)]
"""


def _models(server: Any, endpoint: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/{endpoint}/stats") as resp:
        return json.loads(resp.read())["models"]


def test_a_models_memory_is_measured_from_its_containers_cgroup(server, sm, rt, engine, tmp_path: Path) -> None:
    prefix = tmp_path / "models"
    prefix.mkdir()
    package(tmp_path, iris_classifier(), HOARDING_INFERENCE, name="hoard").rename(prefix / "hoard.tar.gz")
    create_endpoint(sm, "mme-docker-memory", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": prefix.as_uri() + "/"}})
    try:
        (container,) = [c for c in engine.containers.list(filters={"label": "io.dockyard.endpoint=mme-docker-memory"}, ignore_removed=True)
                        if c.labels.get("io.dockyard.multi-model") == "true"]
        # The engine on this machine: the cgroup's files answer (else the stats API would).
        assert cgroup_memory(container.id) is not None
        reply = rt.invoke_endpoint(EndpointName="mme-docker-memory", ContentType="text/csv", Body="1,2,3,4",
                                   TargetModel="hoard.tar.gz")
        assert json.loads(reply["Body"].read()) == [64 * 2**17]
        # The reading after the load is taken once the invocation is answered.
        deadline = time.monotonic() + 30
        while (measured := _models(server, "mme-docker-memory")[0]["memory_bytes"]) is None:
            assert time.monotonic() < deadline, "the model's memory was never measured"
            time.sleep(0.1)
        assert 64 * 2**20 <= measured < 512 * 2**20
    finally:
        delete_all(sm, "mme-docker-memory")

"""A multi-model instance's memory on the process runtime: a model that would take more than the
instance type's memory stops the container, as docker's memory limit would, and the invocation
answers ModelError naming the limit; the instance is replaced and serves the other models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import create_endpoint, delete_all
from e2e.models import iris_classifier, package
from e2e.test_multi_model import SKLEARN_URI, named_model

# Loads 3 GiB, every page touched: more than an ml.c8g.medium's 2 GiB.
GREEDY_INFERENCE = """
import numpy as np

def model_fn(model_dir):
    return np.ones(3 * 2**27)
"""


def test_a_model_past_the_instance_memory_stops_the_container(sm, rt, tmp_path: Path) -> None:
    prefix = tmp_path / "models"
    prefix.mkdir()
    named_model(prefix, "small.tar.gz", "small")
    package(tmp_path, iris_classifier(), GREEDY_INFERENCE, name="greedy").rename(prefix / "greedy.tar.gz")
    name = "mme-memory"
    create_endpoint(sm, name, {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{prefix}/"}},
        InstanceType="ml.c8g.medium")
    try:
        with pytest.raises(ClientError) as info:
            rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="1,2,3,4", TargetModel="greedy.tar.gz")
        error = info.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert "exceeded the memory of one ml.c8g.medium (2048 MB)" in error["Error"]["Message"]
        # A new container takes the instance's place and loads the other model.
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="1,2,3,4",
                                           TargetModel="small.tar.gz")
                break
            except ClientError:
                assert time.monotonic() < deadline, "the instance was not replaced"
                time.sleep(0.2)
        assert json.loads(reply["Body"].read()) == {"model": "small", "rows": 1}
    finally:
        delete_all(sm, name)

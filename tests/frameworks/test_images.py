"""Managed framework images: every AWS URI the SageMaker SDK generates resolves to its image, and
``dockyard images`` lists each with its URI patterns, the version installed and whether it is
usable here."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

from dockyard.images.catalogue import gpu_tag, resolve


@pytest.mark.parametrize(("uri", "name", "gpu"), [
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost", False),
    ("141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.5-1-cpu-py3", "xgboost", False),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", "xgboost", False),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310", "pytorch", False),
    ("763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-inference:2.1.0-gpu-py310", "pytorch", True),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-gpu-py310-cu118-ubuntu20.04-sagemaker",
     "pytorch", True),
    ("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/tensorflow-inference:2.13.0-cpu", "tensorflow", False),
    ("763104351884.dkr.ecr.ap-southeast-2.amazonaws.com/tensorflow-inference:2.13-gpu", "tensorflow", True),
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", "sklearn", False),
])
def test_aws_uris_resolve_to_managed_images(uri, name, gpu):
    assert resolve(uri).name == name
    assert gpu_tag(uri) is gpu


def test_other_repositories_are_not_managed_images():
    assert resolve("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1-cpu") is None
    assert resolve("docker.io/pytorch/pytorch:2.1") is None


def test_dockyard_images_lists_versions_and_usability():
    out = subprocess.run([sys.executable, "-m", "dockyard", "images", "--json"], capture_output=True, text=True, check=False,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert {"sklearn", "xgboost", "pytorch", "tensorflow"} <= set(rows)
    for name, distribution in (("xgboost", "xgboost"), ("pytorch", "torch"), ("tensorflow", "tensorflow-cpu")):
        row = rows[name]
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = None  # an optional framework this environment lacks
        assert row["installed_version"] == version
        assert row["usable"] is (version is not None)
        assert row["install"] == f"pip install 'dockyard[{name}]'"
    assert "<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:<tag>" in rows["xgboost"]["aws_uri_patterns"]
    assert "<account>.dkr.ecr.<region>.amazonaws.com/pytorch-inference:<tag>" in rows["pytorch"]["aws_uri_patterns"]
    assert "<account>.dkr.ecr.<region>.amazonaws.com/tensorflow-inference:<tag>" in rows["tensorflow"]["aws_uri_patterns"]
    table = subprocess.run([sys.executable, "-m", "dockyard", "images"], capture_output=True, text=True, check=False,
                           timeout=120,
                           env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "dockyard/tensorflow" in table.stdout and "tensorflow-inference" in table.stdout

"""Extend: an unchanged SageMaker-style Dockerfile ``FROM`` the AWS scikit-learn URI adds a library
with pip; a model whose inference.py imports it serves on the extended image — and fails, saying
why, on the plain managed image."""

from __future__ import annotations

import json

import pytest
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI, iris_classifier, package

from dockyard.images.build import run_build

pytestmark = [pytest.mark.docker, pytest.mark.index, pytest.mark.slow]  # pip inside an image build

# How a user would name their extended image: their own ECR repository (here only a local tag).
EXTENDED_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn-inflection:1"
DOCKERFILE = f"""
FROM {SKLEARN_URI}
RUN pip install inflection==0.5.1
"""
INFERENCE = """
    import json

    import inflection

    def output_fn(prediction, accept):
        return json.dumps([inflection.ordinalize(int(p) + 1) for p in prediction]), "application/json"
"""


@pytest.fixture(scope="module")
def extended_image(engine, sklearn_image, tmp_path_factory) -> str:
    context = tmp_path_factory.mktemp("extend")
    (context / "Dockerfile").write_text(DOCKERFILE)
    run_build(engine, print, path=str(context), tag=EXTENDED_URI)
    return EXTENDED_URI


def test_an_extended_image_serves_a_model_that_imports_the_added_library(sm, rt, extended_image, tmp_path):
    tarball = package(tmp_path, iris_classifier(), INFERENCE)
    create_endpoint(sm, "extended", {"PrimaryContainer": {"Image": extended_image, "ModelDataUrl": tarball.as_uri()}})
    resp = rt.invoke_endpoint(EndpointName="extended", ContentType="text/csv", Body="5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5")
    assert json.loads(resp["Body"].read()) == ["1st", "3rd"]
    delete_all(sm, "extended")


def test_the_plain_managed_image_lacks_the_library_and_says_so(sm, tmp_path):
    tarball = package(tmp_path, iris_classifier(), INFERENCE)
    create_endpoint(sm, "not-extended", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}},
                    wait=False)
    desc = wait_settled(sm, "not-extended")
    assert desc["EndpointStatus"] == "Failed"
    assert "No module named 'inflection'" in desc["FailureReason"]
    delete_all(sm, "not-extended")

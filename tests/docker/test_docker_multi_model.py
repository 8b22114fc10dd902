"""Multi-model endpoints on the docker runtime: the managed scikit-learn image (which carries the
multi-models label) loads models on demand from /opt/ml/models; an image without the label is
refused with a FailureReason."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI
from e2e.test_multi_model import invoke, named_model

pytestmark = pytest.mark.docker


def test_the_managed_image_serves_models_on_demand(sm, rt, tmp_path: Path) -> None:
    prefix = tmp_path / "models"
    prefix.mkdir()
    named_model(prefix, "a.tar.gz", "a")
    named_model(prefix, "team/b.tar.gz", "b")
    create_endpoint(sm, "mme-docker", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": prefix.as_uri() + "/"}})
    try:
        assert invoke(rt, "mme-docker", "a.tar.gz") == {"model": "a", "rows": 2}
        assert invoke(rt, "mme-docker", "team/b.tar.gz") == {"model": "b", "rows": 2}
        assert invoke(rt, "mme-docker", "a.tar.gz", "1,2,3,4") == {"model": "a", "rows": 1}
    finally:
        delete_all(sm, "mme-docker")


def test_an_image_without_the_multi_models_label_is_refused(sm, byoc_image: str, tmp_path: Path) -> None:
    create_endpoint(sm, "mme-unlabelled", {"PrimaryContainer": {
        "Image": byoc_image, "Mode": "MultiModel", "ModelDataUrl": tmp_path.as_uri() + "/"}}, wait=False)
    try:
        desc = wait_settled(sm, "mme-unlabelled")
        assert desc["EndpointStatus"] == "Failed"
        assert "com.amazonaws.sagemaker.capabilities.multi-models=true" in desc["FailureReason"]
    finally:
        delete_all(sm, "mme-unlabelled")

"""Multi-model endpoints on the docker runtime: the managed scikit-learn image (which carries the
multi-models label) loads models on demand from /opt/ml/models; a user's own multi-model image
(examples/byoc-multi-model) is driven through the container contract, 507 included; an image
without the label is refused with a FailureReason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI
from e2e.test_multi_model import invoke, named_model, update_without_a_failed_invocation
from servers import with_s3

from dockyard.artifacts.package import make_model_tarball

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


def byoc_model(prefix: Path, relative: str, name: str) -> None:
    """A model of examples/byoc-multi-model: name.txt, packed as ``prefix/relative``."""
    source = prefix.parent / f"src-{name}"
    source.mkdir()
    (source / "name.txt").write_text(name)
    (prefix / relative).parent.mkdir(parents=True, exist_ok=True)
    make_model_tarball(source, prefix / relative)


def test_a_byoc_multi_model_image_loads_unloads_and_survives_507(sm, rt, byoc_mme_images, tmp_path: Path) -> None:
    image, _ = byoc_mme_images
    prefix = tmp_path / "models"
    prefix.mkdir()
    for relative, name in [("a.tar.gz", "a"), ("b.tar.gz", "b"), ("team/c.tar.gz", "c")]:
        byoc_model(prefix, relative, name)
    # Room for two models: the third load answers 507 once.
    create_endpoint(sm, "mme-byoc", {"PrimaryContainer": {
        "Image": image, "Mode": "MultiModel", "ModelDataUrl": prefix.as_uri() + "/",
        "Environment": {"MODEL_SLOTS": "2"}}})
    try:
        assert invoke(rt, "mme-byoc", "a.tar.gz", "x") == {"model": "a", "loaded": ["a"], "refused": 0, "bytes": 1}
        assert invoke(rt, "mme-byoc", "b.tar.gz", "xy") == {"model": "b", "loaded": ["a", "b"], "refused": 0, "bytes": 2}
        # The container refused c (507): the platform unloaded a, the least recently used, and retried.
        assert invoke(rt, "mme-byoc", "team/c.tar.gz") == {"model": "c", "loaded": ["b", "c"], "refused": 1,
                                                           "bytes": 31}
        # b is warm (no load, no refusal); then a comes back in place of c, now the least recently used.
        assert invoke(rt, "mme-byoc", "b.tar.gz")["refused"] == 1
        assert invoke(rt, "mme-byoc", "a.tar.gz") == {"model": "a", "loaded": ["a", "b"], "refused": 2, "bytes": 31}
    finally:
        delete_all(sm, "mme-byoc")


def test_the_same_byoc_image_without_the_label_is_refused(sm, byoc_mme_images, tmp_path: Path) -> None:
    _, unlabelled = byoc_mme_images
    create_endpoint(sm, "mme-byoc-plain", {"PrimaryContainer": {
        "Image": unlabelled, "Mode": "MultiModel", "ModelDataUrl": tmp_path.as_uri() + "/"}}, wait=False)
    try:
        desc = wait_settled(sm, "mme-byoc-plain")
        assert desc["EndpointStatus"] == "Failed"
        assert desc["FailureReason"].startswith(f"Container primary's image {unlabelled} does not have the label "
                                                "com.amazonaws.sagemaker.capabilities.multi-models=true")
    finally:
        delete_all(sm, "mme-byoc-plain")


def test_an_image_without_the_multi_models_label_is_refused(sm, byoc_image: str, tmp_path: Path) -> None:
    create_endpoint(sm, "mme-unlabelled", {"PrimaryContainer": {
        "Image": byoc_image, "Mode": "MultiModel", "ModelDataUrl": tmp_path.as_uri() + "/"}}, wait=False)
    try:
        desc = wait_settled(sm, "mme-unlabelled")
        assert desc["EndpointStatus"] == "Failed"
        assert "com.amazonaws.sagemaker.capabilities.multi-models=true" in desc["FailureReason"]
    finally:
        delete_all(sm, "mme-unlabelled")


@pytest.mark.index  # pip inside the container
def test_a_model_with_requirements_gets_its_own_layer(sm, rt, tmp_path: Path) -> None:
    from frameworks.test_layers import INFERENCE, REQUIREMENT

    prefix = tmp_path / "models"
    prefix.mkdir()
    source = tmp_path / "uni-src"
    (source / "code").mkdir(parents=True)
    (source / "code" / "inference.py").write_text(textwrap.dedent(INFERENCE))
    (source / "code" / "requirements.txt").write_text(REQUIREMENT + "\n")
    make_model_tarball(source, prefix / "uni.tar.gz")
    named_model(prefix, "a.tar.gz", "a")
    create_endpoint(sm, "mme-docker-layer", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": prefix.as_uri() + "/"}})
    try:
        reply = rt.invoke_endpoint(EndpointName="mme-docker-layer", TargetModel="uni.tar.gz", ContentType="text/csv",
                                   Body="Ünïcödé straße".encode())
        assert reply["Body"].read().decode() == "Unicode strasse"
        assert invoke(rt, "mme-docker-layer", "a.tar.gz") == {"model": "a", "rows": 2}
    finally:
        delete_all(sm, "mme-docker-layer")


def test_a_prefix_in_s3(sklearn_image: str, tmp_path: Path) -> None:
    """The server fetches each model from S3 on the host; the container finds it mounted."""
    from e2e.test_s3_and_sdk_code import multi_model_prefix_in_s3

    with with_s3(tmp_path / "server", {"DOCKYARD_RUNTIME": "docker"}) as (srv, s3):
        multi_model_prefix_in_s3(srv, s3, tmp_path)


def test_update_endpoint_without_a_failed_invocation(sm, rt, tmp_path: Path) -> None:
    update_without_a_failed_invocation(sm, rt, tmp_path)

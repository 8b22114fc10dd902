"""Hostile model data against a real `dockyard serve`: each attack is refused at CreateModel or
fails the endpoint with a FailureReason that names the problem; nothing of it runs or fills the
disk."""

from __future__ import annotations

import gzip
import tarfile

import pytest
from botocore.exceptions import ClientError
from pickle_payloads import POPEN_WALK, popen_touch
from servers import Server

from dockyard.artifacts.package import make_model_tarball
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI, iris_classifier, package

MIB = 1024 * 1024
LIMIT = 8 * MIB


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server that allows local paths only under ``allowed/`` and 8 MiB of model data."""
    root = tmp_path_factory.mktemp("guarded")
    (root / "allowed").mkdir()
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_MAX_UNPACKED_BYTES": str(LIMIT)},
                 allow_paths=(root / "allowed",)).start()
    srv.allowed = root / "allowed"
    yield srv
    srv.stop()


def failure_of(sm, name: str, model_data_url: str) -> str:
    create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data_url}}, wait=False)
    desc = wait_settled(sm, name)
    assert desc["EndpointStatus"] == "Failed"
    delete_all(sm, name)
    return desc["FailureReason"]


def test_a_gzip_bomb_fails_the_endpoint_at_the_limit(guarded):
    source = guarded.allowed / "bomb-src"
    source.mkdir()
    # Zeros compress about 1000:1: 32 MiB on disk here become a ~32 KiB archive.
    (source / "model.joblib").write_bytes(bytes(4 * LIMIT))
    bomb = make_model_tarball(source, guarded.allowed / "bomb.tar.gz")
    assert bomb.stat().st_size < MIB // 8
    reason = failure_of(guarded.client("sagemaker"), "gzip-bomb", bomb.as_uri())
    assert f"{bomb.as_uri()} exceeds the limit of {LIMIT} bytes for an instance's model data" in reason
    assert "DOCKYARD_MAX_UNPACKED_BYTES" in reason
    assert not list((guarded.state_dir / "instances").glob("gzip-bomb*"))


def test_a_local_path_outside_the_allowed_roots_is_refused_at_create_model(guarded, tmp_path):
    tarball = package(tmp_path, iris_classifier())
    sm = guarded.client("sagemaker")
    with pytest.raises(ClientError) as info:
        sm.create_model(ModelName="outside", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
                        PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()})
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Refusing to read model data at {tarball}" in error["Message"]
    assert f"outside the allowed local paths ({guarded.allowed})" in error["Message"]
    assert "--allow-path DIR" in error["Message"]


@pytest.mark.parametrize("path", ["/dev/zero", "/proc/self/environ"])
def test_device_files_and_proc_are_refused_at_create_model(guarded, path):
    with pytest.raises(ClientError) as info:
        guarded.client("sagemaker").create_model(
            ModelName="devices", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
            PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": path},
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert f"Refusing to read model data at {path}" in info.value.response["Error"]["Message"]
    assert "is never allowed" in info.value.response["Error"]["Message"]


def test_the_metadata_service_is_not_fetched_from(guarded):
    reason = failure_of(guarded.client("sagemaker"), "metadata", "http://169.254.169.254/latest/meta-data/iam/")
    assert "resolves to 169.254.169.254, a link-local or cloud-metadata address" in reason


def test_a_dotted_name_pickle_exploit_is_refused_by_the_restricted_loader(sm, tmp_path):
    marker = tmp_path / "pwned"
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.pkl").write_bytes(popen_touch(str(marker)))
    tarball = make_model_tarball(source, tmp_path / "model.tar.gz")
    container = {
        "Image": SKLEARN_URI,
        "ModelDataUrl": tarball.as_uri(),
        "Environment": {"DOCKYARD_RESTRICTED_UNPICKLE": "true"},
    }
    create_endpoint(sm, "dotted-pickle", {"PrimaryContainer": container}, wait=False)
    desc = wait_settled(sm, "dotted-pickle")
    assert desc["EndpointStatus"] == "Failed"
    assert f"forbidden global {'.'.join(POPEN_WALK)}" in desc["FailureReason"]
    assert not marker.exists()
    delete_all(sm, "dotted-pickle")


def test_a_local_directory_image_outside_the_allowed_roots_is_refused(guarded, tmp_path):
    image = tmp_path / "byoc"
    image.mkdir()
    (image / "serve").write_text("#!/bin/sh\nexit 0\n")
    (image / "serve").chmod(0o755)
    with pytest.raises(ClientError) as info:
        guarded.client("sagemaker").create_model(
            ModelName="byoc-outside", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
            PrimaryContainer={"Image": image.as_uri()},
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert f"Refusing to read image at {image}" in info.value.response["Error"]["Message"]


def test_a_variants_volume_size_is_its_instances_limit(sm, tmp_path):
    # A tar header announcing 1 GiB + 1 byte: refused at the header, before anything is written.
    header = tarfile.TarInfo("model.joblib")
    header.size = 1024**3 + 1
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(gzip.compress(header.tobuf() + bytes(512)))
    container = {"Image": SKLEARN_URI, "ModelDataUrl": archive.as_uri()}
    create_endpoint(sm, "volume", {"PrimaryContainer": container}, wait=False, VolumeSizeInGB=1)
    desc = wait_settled(sm, "volume")
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert "exceeds the limit of 1 GiB for an instance's model data" in reason
    assert "raise the variant's VolumeSizeInGB" in reason
    delete_all(sm, "volume")

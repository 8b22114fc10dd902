"""Hostile model data against a real `dockyard serve`: each attack fails the endpoint with a
FailureReason that names the problem, and nothing of it runs or fills the disk."""

from __future__ import annotations

from pickle_payloads import POPEN_WALK, popen_touch

from dockyard.artifacts.package import make_model_tarball
from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI


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

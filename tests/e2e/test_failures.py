"""Endpoints that cannot start end Failed with a FailureReason that says why — quoting the
container's own last log lines — and a failed endpoint can still be deleted."""

from __future__ import annotations

import tarfile

from e2e.deploy import create_endpoint, delete_all, wait_settled
from e2e.models import SKLEARN_URI, package


def test_model_without_a_model_file_fails_quoting_the_container_log(sm, tmp_path):
    tarball = package(tmp_path, model=None, inference_py="X = 1\n")
    create_endpoint(sm, "no-model-file", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}},
                    wait=False)
    desc = wait_settled(sm, "no-model-file")
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("The primary container for production variant AllTraffic exited with code")
    assert "model.joblib" in reason  # the server's own last log line says what is missing
    assert len(reason) <= 1024
    delete_all(sm, "no-model-file")


def test_image_the_process_runtime_cannot_run(sm):
    create_endpoint(sm, "byoc-on-process", {"PrimaryContainer": {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-cpp:1"}},
                    wait=False)
    desc = wait_settled(sm, "byoc-on-process")
    assert desc["EndpointStatus"] == "Failed"
    assert "cannot run on the process runtime" in desc["FailureReason"]
    assert "--runtime docker" in desc["FailureReason"]
    delete_all(sm, "byoc-on-process")


def test_archive_escaping_the_model_directory_is_refused(sm, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("owned")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../../escaped.txt")
    create_endpoint(sm, "evil-archive", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": str(evil)}}, wait=False)
    desc = wait_settled(sm, "evil-archive")
    assert desc["EndpointStatus"] == "Failed"
    assert "../../escaped.txt" in desc["FailureReason"]
    assert not (tmp_path.parent / "escaped.txt").exists()
    delete_all(sm, "evil-archive")


def test_missing_model_data_fails_naming_the_path(sm, tmp_path):
    missing = tmp_path / "nowhere" / "model.tar.gz"
    create_endpoint(sm, "missing-data", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": str(missing)}}, wait=False)
    desc = wait_settled(sm, "missing-data")
    assert desc["EndpointStatus"] == "Failed"
    assert str(missing) in desc["FailureReason"]
    delete_all(sm, "missing-data")

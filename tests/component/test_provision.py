"""Provisioning an instance: a failed model-data fetch leaves no ``instances/<id>/`` behind and
stops its siblings' work, also when the sibling is still downloading."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.policy import Budget
from dockyard.control.plans import ContainerPlan, VariantPlan
from dockyard.control.provision import Provisioner
from dockyard.runtime.base import InstanceStartError


class Artifacts:
    """An ArtifactStore whose "broken" model fails at once and whose "slow" model blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_started = threading.Event()
        self.code_fetched: list[str] = []

    def budget(self, volume_bytes: int | None) -> Budget:
        return Budget(volume_bytes or 1 << 20)

    def materialize_model_data(self, definition: dict[str, Any], dest: Path, budget: Budget) -> None:
        url = definition["ModelDataUrl"]
        if url == "broken":
            raise ArtifactError("Could not find model data broken.")
        if url == "slow":
            self.slow_started.set()
            assert self.release.wait(10), "the test never released the slow download"
        (dest / "model.joblib").write_bytes(b"model")

    def materialize_code(self, submit_directory: str, dest: Path, budget: Budget) -> Path:
        self.code_fetched.append(submit_directory)
        return dest


def plan(*containers: tuple[str, str]) -> VariantPlan:
    return VariantPlan(
        name="AllTraffic", model_name="m", instance_type="ml.m5.large", instance_count=1, weight=1.0,
        startup_timeout=None, mode="Direct",
        containers=tuple(
            ContainerPlan(hostname, {"Image": "img", "ModelDataUrl": url,
                                     "Environment": {"SAGEMAKER_SUBMIT_DIRECTORY": f"s3://b/{hostname}/sourcedir.tar.gz"}})
            for hostname, url in containers
        ),
    )


async def test_failed_fetch_removes_the_instance_directory_and_skips_the_siblings_code(tmp_path: Path) -> None:
    artifacts = Artifacts()
    provisioner = Provisioner(tmp_path, artifacts, 60.0)  # type: ignore[arg-type]
    start = asyncio.ensure_future(provisioner.instance_spec("ep", plan(("slow", "slow"), ("broken", "broken"))))
    await asyncio.to_thread(artifacts.slow_started.wait, 10)
    with pytest.raises(InstanceStartError, match="container broken: Could not find model data broken"):
        await start  # failed at once, while the sibling is still downloading
    (workdir,) = (tmp_path / "instances").iterdir()
    artifacts.release.set()
    await provisioner.close()
    assert not workdir.exists()
    assert artifacts.code_fetched == []  # the sibling stopped after its model data


async def test_cancelled_provisioning_removes_the_instance_directory(tmp_path: Path) -> None:
    artifacts = Artifacts()
    provisioner = Provisioner(tmp_path, artifacts, 60.0)  # type: ignore[arg-type]
    start = asyncio.ensure_future(provisioner.instance_spec("ep", plan(("slow", "slow"))))
    await asyncio.to_thread(artifacts.slow_started.wait, 10)
    start.cancel()  # a DeleteEndpoint during Creating
    with pytest.raises(asyncio.CancelledError):
        await start
    artifacts.release.set()
    await provisioner.close()
    assert list((tmp_path / "instances").iterdir()) == []
    assert artifacts.code_fetched == []


async def test_successful_fetch_keeps_model_and_code(tmp_path: Path) -> None:
    artifacts = Artifacts()
    provisioner = Provisioner(tmp_path, artifacts, 60.0)  # type: ignore[arg-type]
    spec = await provisioner.instance_spec("ep", plan(("a", "fine"), ("b", "fine")))
    assert [c.hostname for c in spec.containers] == ["a", "b"]
    assert all((c.model_dir / "model.joblib").read_bytes() == b"model" for c in spec.containers)
    assert sorted(artifacts.code_fetched) == ["s3://b/a/sourcedir.tar.gz", "s3://b/b/sourcedir.tar.gz"]
    assert "SAGEMAKER_SUBMIT_DIRECTORY" not in spec.containers[0].environment

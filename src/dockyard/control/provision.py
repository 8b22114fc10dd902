"""Turning a variant plan into an instance spec: directories, model data, code, environment.

Model data is fetched (cached) and unpacked per container, as SageMaker does into
``/opt/ml/model``. A ``SAGEMAKER_SUBMIT_DIRECTORY`` that names an archive (``s3://…/sourcedir.tar.gz``,
as the SageMaker SDK uploads it) is fetched and unpacked too; the runtime then tells the
container where it is.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.store import ArtifactStore
from dockyard.control.plans import ContainerPlan, VariantPlan
from dockyard.runtime.base import ContainerSpec, InstanceSpec, InstanceStartError

# Where SageMaker mounts model data; a repacked model's code lives below it.
CONTAINER_MODEL_DIR = "/opt/ml/model"


class Provisioner:
    def __init__(self, state_dir: Path, artifacts: ArtifactStore, default_startup_timeout: float) -> None:
        self._instances = state_dir / "instances"
        self._logs = state_dir / "logs"
        self._artifacts = artifacts
        self._startup_timeout = default_startup_timeout

    def log_dir(self, endpoint: str) -> Path:
        return self._logs / endpoint.lower()

    def sweep_instances(self, keep: set[str]) -> None:
        """Remove the directories of instances other than ``keep`` (those of a killed server)."""
        if self._instances.is_dir():
            for path in self._instances.iterdir():
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)

    async def instance_spec(self, endpoint: str, plan: VariantPlan) -> InstanceSpec:
        instance_id = f"{endpoint}-{plan.name}-{uuid.uuid4().hex[:8]}".lower()
        workdir = self._instances / instance_id
        containers = await asyncio.gather(*(self._container(workdir, c) for c in plan.containers))
        return InstanceSpec(
            instance_id=instance_id,
            endpoint=endpoint,
            variant=plan.name,
            instance_type=plan.instance_type,
            containers=tuple(containers),
            startup_timeout=plan.startup_timeout or self._startup_timeout,
            workdir=workdir,
            log_dir=self.log_dir(endpoint) / instance_id,
        )

    async def _container(self, workdir: Path, plan: ContainerPlan) -> ContainerSpec:
        model_dir = workdir / plan.hostname / "model"
        model_dir.mkdir(parents=True)
        environment = dict(plan.definition.get("Environment", {}))
        try:
            await asyncio.to_thread(self._artifacts.materialize_model_data, plan.definition, model_dir)
            code_dir = await self._code(environment.pop("SAGEMAKER_SUBMIT_DIRECTORY", None), model_dir, workdir / plan.hostname / "code")
        except ArtifactError as exc:
            raise InstanceStartError(f"Failed to prepare model data for container {plan.hostname}: {exc}") from None
        return ContainerSpec(
            hostname=plan.hostname,
            image=plan.image,
            environment=environment,
            model_dir=model_dir,
            code_dir=code_dir,
            multi_model=plan.multi_model,
        )

    async def _code(self, submit_directory: str | None, model_dir: Path, dest: Path) -> Path | None:
        if not submit_directory:
            return None
        if submit_directory.rstrip("/").startswith(CONTAINER_MODEL_DIR):
            # A repacked model (network isolation): code/ inside the model data.
            return model_dir / submit_directory.rstrip("/")[len(CONTAINER_MODEL_DIR):].lstrip("/")
        dest.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(self._artifacts.materialize_code, submit_directory, dest)

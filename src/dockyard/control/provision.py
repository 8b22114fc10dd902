"""Turning a variant plan into an instance spec: directories, model data, code, environment.

Model data is fetched (cached) and unpacked per container, as SageMaker does into
``/opt/ml/model``. A ``SAGEMAKER_SUBMIT_DIRECTORY`` that names an archive (``s3://…/sourcedir.tar.gz``,
as the SageMaker SDK uploads it) is fetched and unpacked too; the runtime then tells the
container where it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from dockyard.artifacts.policy import Budget
from dockyard.artifacts.store import ArtifactStore
from dockyard.control.plans import ContainerPlan, VariantPlan
from dockyard.runtime.base import ContainerSpec, InstanceSpec
from dockyard.runtime.model_data import prepare_container


class Provisioner:
    def __init__(
        self, state_dir: Path, artifacts: ArtifactStore, default_startup_timeout: float, instances_dir: Path | None = None,
        fetch_on_node: bool = False,
    ) -> None:
        # Instance directories: <state-dir>/instances unless the runtime's containers need them elsewhere.
        self._instances = instances_dir or state_dir / "instances"
        self._logs = state_dir / "logs"
        self._artifacts = artifacts
        self._startup_timeout = default_startup_timeout
        # The runtime fetches model data on the node that runs the instance (ray): specs only name it.
        self._fetch_on_node = fetch_on_node
        # Removals of abandoned instance directories, waiting for their fetch threads to return.
        self._removals: set[asyncio.Task[None]] = set()

    def log_dir(self, endpoint: str) -> Path:
        return self._logs / endpoint.lower()

    def sweep_instances(self, keep: set[str]) -> None:
        """Remove the directories of instances other than ``keep`` (those of a killed server)."""
        if self._instances.is_dir():
            for path in self._instances.iterdir():
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)

    async def instance_spec(self, endpoint: str, plan: VariantPlan) -> InstanceSpec:
        """Fetch every container's model data and code at once; on the first failure (or a
        cancellation) the siblings stop after their current fetch and ``instances/<id>/`` is removed."""
        instance_id = f"{endpoint}-{plan.name}-{uuid.uuid4().hex[:8]}".lower()
        workdir = self._instances / instance_id
        if self._fetch_on_node:
            containers = [ContainerSpec(c.hostname, c.image, {}, workdir / c.hostname / "model", multi_model=c.multi_model,
                                        model_source=c.definition) for c in plan.containers]
            return self._spec(endpoint, plan, instance_id, workdir, containers)
        abandoned = threading.Event()
        # The instance's model data limit (its ML storage volume), shared by its containers.
        budget = self._artifacts.budget(plan.volume_bytes)
        fetches = [asyncio.ensure_future(asyncio.to_thread(self._container, workdir, c, abandoned, budget))
                   for c in plan.containers]
        try:
            # Shielded: a fetch runs in a thread that cannot be interrupted, so it is waited for, not cancelled.
            containers = await asyncio.gather(*(asyncio.shield(f) for f in fetches))
        except BaseException:
            abandoned.set()
            removal = asyncio.ensure_future(_remove_when_done(workdir, fetches))
            self._removals.add(removal)
            removal.add_done_callback(self._removals.discard)
            raise
        return self._spec(endpoint, plan, instance_id, workdir, containers)

    def _spec(self, endpoint: str, plan: VariantPlan, instance_id: str, workdir: Path,
              containers: Sequence[ContainerSpec]) -> InstanceSpec:
        return InstanceSpec(
            instance_id=instance_id,
            endpoint=endpoint,
            variant=plan.name,
            instance_type=plan.instance_type,
            containers=tuple(containers),
            startup_timeout=plan.startup_timeout or self._startup_timeout,
            workdir=workdir,
            log_dir=self.log_dir(endpoint) / instance_id,
            plan_digest=plan_digest(plan),
            volume_bytes=plan.volume_bytes,
        )

    async def close(self) -> None:
        """Wait until the directories of abandoned instances are removed."""
        await asyncio.gather(*self._removals, return_exceptions=True)

    def _container(self, workdir: Path, plan: ContainerPlan, abandoned: threading.Event, budget: Budget) -> ContainerSpec:
        """One container's directories, model data and code (blocking: runs in a thread)."""
        return prepare_container(self._artifacts, workdir, plan.hostname, plan.image, plan.definition,
                                 plan.multi_model, budget, abandoned)


def plan_digest(plan: VariantPlan) -> str:
    """What an instance of ``plan`` runs — containers, mode, instance type — as a short digest
    (weights and counts left out: an instance serves any of those)."""
    what = [[(c.hostname, c.definition) for c in plan.containers], plan.mode, plan.instance_type]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


async def _remove_when_done(workdir: Path, fetches: Sequence[asyncio.Future[ContainerSpec]]) -> None:
    await asyncio.gather(*fetches, return_exceptions=True)
    await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

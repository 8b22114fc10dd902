"""One container's model data and code, fetched into its instance directory: what SageMaker puts
in ``/opt/ml/model`` and where ``SAGEMAKER_SUBMIT_DIRECTORY``'s code is unpacked.

The control plane's provisioner calls it on the server for the process and docker runtimes; the
ray runtime's instance actor calls it on the node that runs the instance, so that model data is
fetched where it is used. Blocking: callers run it in a thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.policy import Budget
from dockyard.artifacts.store import ArtifactStore
from dockyard.runtime.base import ContainerSpec, InstanceStartError
from dockyard.runtime.contract import MODEL_DIR


def prepare_container(
    artifacts: ArtifactStore,
    workdir: Path,
    hostname: str,
    image: str,
    definition: dict[str, Any],
    multi_model: bool,
    budget: Budget,
    abandoned: threading.Event,
) -> ContainerSpec:
    """The container's spec, its model data and code in ``workdir/<hostname>/``; InstanceStartError
    when they cannot be fetched, or when ``abandoned`` (a sibling failed) is set in between."""
    model_dir = workdir / hostname / "model"
    model_dir.mkdir(parents=True)
    environment = dict(definition.get("Environment", {}))
    submit_directory = environment.pop("SAGEMAKER_SUBMIT_DIRECTORY", None)
    try:
        artifacts.materialize_model_data(definition, model_dir, budget)
        if abandoned.is_set():
            raise InstanceStartError(f"Container {hostname} was not prepared: a sibling failed first.")
        code_dir = _code(artifacts, submit_directory, model_dir, workdir / hostname / "code", budget)
    except ArtifactError as exc:
        raise InstanceStartError(f"Failed to prepare model data for container {hostname}: {exc}") from None
    return ContainerSpec(
        hostname=hostname,
        image=image,
        environment=environment,
        model_dir=model_dir,
        code_dir=code_dir,
        multi_model=multi_model,
    )


def _code(artifacts: ArtifactStore, submit_directory: str | None, model_dir: Path, dest: Path, budget: Budget) -> Path | None:
    if not submit_directory:
        return None
    if submit_directory.rstrip("/").startswith(MODEL_DIR):
        # A repacked model (network isolation): code/ inside the model data.
        return model_dir / submit_directory.rstrip("/")[len(MODEL_DIR):].lstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    return artifacts.materialize_code(submit_directory, dest, budget)

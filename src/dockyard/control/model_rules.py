"""CreateModel consistency rules the service model cannot express (SageMaker enforces them
server side): one of PrimaryContainer/Containers, hostnames for Direct, and size limits; and
dockyard's own: local model data and code only under the allowed roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.sources import check_local_location
from dockyard.control import multimodel
from dockyard.control.plans import model_containers
from dockyard.runtime.contract import MODEL_DIR

MAX_CONTAINERS = 15
# All Environment keys and values of a model together, across its containers.
MAX_ENVIRONMENT_BYTES = 32 * 1024


def check_model(params: dict[str, Any], roots: tuple[Path, ...] | None) -> None:
    """Raise ValidationException for the first rule ``params`` breaks; ``roots`` are the allowed
    local paths (None: any)."""
    has_primary, has_list = "PrimaryContainer" in params, bool(params.get("Containers"))
    if has_primary == has_list:
        raise errors.validation(
            "Exactly one of PrimaryContainer or Containers must be specified"
            + (" (both were given)." if has_primary else " (neither was given).")
        )
    containers = model_containers(params)
    mode = params.get("InferenceExecutionConfig", {}).get("Mode")
    if has_primary and mode == "Direct":
        raise errors.validation(
            "InferenceExecutionConfig Mode Direct needs a multi-container model: give Containers, not PrimaryContainer."
        )
    if len(containers) > MAX_CONTAINERS:
        raise errors.validation(
            f"A model can have at most {MAX_CONTAINERS} containers; {len(containers)} were given."
        )
    for i, container in enumerate(containers, start=1):
        where = "PrimaryContainer" if has_primary else f"Containers[{i}]"
        if not container.get("Image"):
            raise errors.validation(f"{where} has no Image: dockyard runs containers by image.")
        multimodel.check_container(container, where, has_primary)
        _check_local_paths(container, where, roots)
    if has_list:
        _check_hostnames(containers, mode or "Serial")
    size = sum(len(k) + len(v) for c in containers for k, v in c.get("Environment", {}).items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise errors.validation(
            f"The Environment variables of all containers total {size} characters; the limit is {MAX_ENVIRONMENT_BYTES}."
        )


def _check_local_paths(container: dict[str, Any], where: str, roots: tuple[Path, ...] | None) -> None:
    """Refuse at CreateModel what fetching would refuse later: a local path outside the roots; and
    a local-directory image (the runtimes run those) under the same rule."""
    s3 = container.get("ModelDataSource", {}).get("S3DataSource", {})
    code = container.get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
    if code and code.startswith(MODEL_DIR):
        code = None  # a repacked model's code, inside its model data
    located = [(container.get("Image"), "image"), (container.get("ModelDataUrl"), "model data"),
               (s3.get("S3Uri"), "model data"), (code, "code")]
    for url, what in located:
        if url:
            try:
                check_local_location(url, roots, what)
            except ArtifactError as exc:
                raise errors.validation(f"{where}: {exc}") from None


def _check_hostnames(containers: list[dict[str, Any]], mode: str) -> None:
    hostnames = [c.get("ContainerHostname") for c in containers]
    missing = [i for i, h in enumerate(hostnames, start=1) if not h]
    if mode == "Direct" and missing:
        raise errors.validation(
            "InferenceExecutionConfig Mode Direct requires a ContainerHostname for every container; "
            f"container(s) {', '.join(map(str, missing))} have none."
        )
    if missing and len(missing) != len(hostnames):
        raise errors.validation(
            "Either all containers or none must set ContainerHostname; "
            f"container(s) {', '.join(map(str, missing))} have none."
        )
    seen: set[str] = set()
    for hostname in filter(None, hostnames):
        if hostname.lower() in seen:
            raise errors.validation(f"ContainerHostname {hostname} is used by more than one container.")
        seen.add(hostname.lower())

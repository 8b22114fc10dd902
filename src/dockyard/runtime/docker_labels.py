"""The labels on dockyard's containers, and the instance they describe.

Every container of an instance carries the owner (the server's state directory), its role
(``sandbox`` or ``container``) and the instance id, so that a server finds what belongs to it.
The sandbox also records what a restarted server needs to take the instance over instead of
replacing it: the endpoint, variant, plan digest and directories; each model container its
hostname, image, port and model directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dockyard.runtime.base import ContainerSpec, InstanceSpec

PREFIX = "io.dockyard."
OWNER = PREFIX + "owner"
ROLE = PREFIX + "role"
INSTANCE = PREFIX + "instance"
ENDPOINT = PREFIX + "endpoint"
VARIANT = PREFIX + "variant"
INSTANCE_TYPE = PREFIX + "instance-type"
PLAN = PREFIX + "plan"
CONTAINERS = PREFIX + "containers"
WORKDIR = PREFIX + "workdir"
LOG_DIR = PREFIX + "log-dir"
HOSTNAME = PREFIX + "hostname"
IMAGE = PREFIX + "image"
PORT = PREFIX + "port"
MODEL_DIR = PREFIX + "model-dir"
MULTI_MODEL = PREFIX + "multi-model"


def sandbox_labels(owner: str, spec: InstanceSpec) -> dict[str, str]:
    return {
        OWNER: owner,
        ROLE: "sandbox",
        INSTANCE: spec.instance_id,
        ENDPOINT: spec.endpoint,
        VARIANT: spec.variant,
        INSTANCE_TYPE: spec.instance_type,
        PLAN: spec.plan_digest,
        CONTAINERS: str(len(spec.containers)),
        WORKDIR: str(spec.workdir),
        LOG_DIR: str(spec.log_dir),
    }


def container_labels(owner: str, spec: InstanceSpec, container: ContainerSpec, port: int) -> dict[str, str]:
    return {
        OWNER: owner,
        ROLE: "container",
        INSTANCE: spec.instance_id,
        ENDPOINT: spec.endpoint,
        VARIANT: spec.variant,
        INSTANCE_TYPE: spec.instance_type,
        HOSTNAME: container.hostname,
        IMAGE: container.image,
        PORT: str(port),
        MODEL_DIR: str(container.model_dir),
        MULTI_MODEL: str(container.multi_model).lower(),
    }


def described_instance(sandbox: Mapping[str, str], containers: list[Mapping[str, str]]) -> InstanceSpec | None:
    """The spec of an instance from its containers' labels (model containers in port order);
    None when a container is missing or a label is not dockyard's own."""
    try:
        if int(sandbox[CONTAINERS]) != len(containers):
            return None
        return InstanceSpec(
            instance_id=sandbox[INSTANCE],
            endpoint=sandbox[ENDPOINT],
            variant=sandbox[VARIANT],
            instance_type=sandbox[INSTANCE_TYPE],
            containers=tuple(
                ContainerSpec(hostname=c[HOSTNAME], image=c[IMAGE], environment={}, model_dir=Path(c[MODEL_DIR]),
                              multi_model=c.get(MULTI_MODEL) == "true")
                for c in containers
            ),
            # It passed its start-up health check before the restart.
            startup_timeout=0.0,
            workdir=Path(sandbox[WORKDIR]),
            log_dir=Path(sandbox[LOG_DIR]),
            plan_digest=sandbox[PLAN],
        )
    except (KeyError, ValueError):  # made by an older dockyard, or labels edited by hand
        return None

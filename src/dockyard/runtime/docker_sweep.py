"""Finding and removing dockyard's containers in an engine by their labels.

The docker runtime removes an instance's containers this way when it stops it, and what is left
of its server when it starts or closes; a Ray node's reaping task (``ray_actor.reap``) removes
those of a server's dead actors on that node. A container is ours by its owner label only: one
labelled with another owner, or none, is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from dockyard.runtime import docker_labels

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)


def labelled(client: docker.DockerClient, owner: str, instance: str | None = None) -> list[Any]:
    """The containers (running or not) of ``owner``, or of its instance ``instance``."""
    labels = [f"{docker_labels.OWNER}={owner}"]
    if instance is not None:
        labels.append(f"{docker_labels.INSTANCE}={instance}")
    # One removed between the engine's listing and its inspection (a sweep racing a stop) is gone: skipped.
    return client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)


def in_order(containers: list[Any]) -> tuple[list[Any], list[Any]]:
    """The model containers, then the sandboxes whose network they use: the order of removal."""
    sandboxes = [c for c in containers if c.labels.get(docker_labels.ROLE) == "sandbox"]
    return [c for c in containers if c not in sandboxes], sandboxes


def remove(container: Any) -> None:
    """Remove a container at once (SIGKILL); one already gone, or going, is fine."""
    import docker

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress
            log.warning("could not remove container %s: %s", container.short_id, exc.explanation or exc)


def sweep(client: docker.DockerClient, owner: str, spare: Collection[str] = (), instance: str | None = None) -> list[str]:
    """Remove the containers of ``owner`` (only those of ``instance`` if given) except those of the
    instances in ``spare``; the ids of the instances whose containers were removed."""
    found = [c for c in labelled(client, owner, instance) if c.labels.get(docker_labels.INSTANCE) not in spare]
    for wave in in_order(found):
        for container in wave:
            remove(container)
    return sorted({c.labels.get(docker_labels.INSTANCE, "") for c in found})

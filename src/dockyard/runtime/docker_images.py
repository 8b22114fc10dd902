"""Which local image a ContainerDefinition's ``Image`` runs as on the docker runtime.

In order, the first that works:
1. the reference exactly as given, if the engine has it (a built Extend or BYOC image, or a managed
   image's AWS URI tag made by ``dockyard images build``);
2. for a managed image, its local dockyard tag (``dockyard/sklearn:latest``);
3. for an ECR-style URI (``<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>``) with a registry
   configured (``DOCKYARD_REGISTRY=localhost:5000``): ``localhost:5000/<repo>:<tag>``, local or pulled;
4. any other reference: pulled as given.
When nothing works the error names the image and every place that was tried.

``check_labels`` then holds the resolved images to what SageMaker reads from their labels: side by
side, each container listens on ``SAGEMAKER_BIND_TO_PORT``; a Mode MultiModel one serves ``/models``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import regex

from dockyard.images import catalogue
from dockyard.runtime.base import InstanceSpec, InstanceStartError
from dockyard.runtime.contract import BIND_TO_PORT_LABEL, MULTI_MODEL_LABEL

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

ECR_URI = regex.compile(
    r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?P<path>[a-z0-9._/-]+(?:[:@][\w.:-]+)?)"
)


@dataclass(frozen=True)
class LocalImage:
    reference: str
    labels: dict[str, str]


def registry_reference(image: str, registry: str | None) -> str | None:
    """``image`` (an ECR-style URI) in ``registry``: the same repository and tag on another host."""
    match = ECR_URI.fullmatch(image)
    if match is None or not registry:
        return None
    return f"{registry.rstrip('/')}/{match['path']}"


class ImageResolver:
    """Finds (and pulls) images; blocking: call it from a worker thread."""

    def __init__(self, client: docker.DockerClient, registry: str | None) -> None:
        self._client = client
        self._registry = registry

    def _local(self, reference: str) -> LocalImage | None:
        import docker

        try:
            image = self._client.images.get(reference)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError:  # an invalid reference is simply not there
            return None
        return LocalImage(reference, dict(image.labels or {}))

    def _pull(self, reference: str) -> LocalImage:
        """Pull ``reference``; raise ``LookupError`` with the engine's reason when that fails."""
        import docker
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(reference)
        log.info("pulling image %s", reference)
        try:
            self._client.images.pull(repository, tag=tag or "latest")
        except docker.errors.APIError as exc:
            raise LookupError(str(exc.explanation or exc).strip()) from None
        found = self._local(reference)
        if found is None:
            raise LookupError("the engine reported the pull done but has no such image")
        return found

    def resolve(self, image: str) -> LocalImage:
        """The local image ``image`` runs as, pulled if need be; InstanceStartError listing what was tried."""
        tried: list[str] = []
        found = self._local(image)
        if found:
            return found
        tried.append(f"local image {image} (not present)")
        managed = catalogue.resolve(image)
        if managed is not None:
            tag = f"{managed.dockyard_name}:latest"
            found = self._local(tag)
            if found:
                return found
            tried.append(f"local image {tag} (not built: run `dockyard images build {managed.name}`)")
        ecr = ECR_URI.fullmatch(image) is not None
        mapped = registry_reference(image, self._registry)
        if mapped is not None:
            found = self._local(mapped)
            if found:
                return found
            pulls = [mapped]
        elif ecr:
            tried.append("no registry for ECR-style URIs (set DOCKYARD_REGISTRY, e.g. localhost:5000)")
            pulls = []
        else:
            # A dockyard name is never pulled; any other reference is an ordinary registry image.
            pulls = [] if managed else [image]
        for reference in pulls:
            try:
                return self._pull(reference)
            except LookupError as exc:
                tried.append(f"pull {reference} ({exc})")
        raise InstanceStartError(f"Image {image} is not available to the container engine. Tried: {'; '.join(tried)}.")


def check_labels(spec: InstanceSpec, images: list[LocalImage]) -> None:
    """Raise ``InstanceStartError`` naming the container and the label its image lacks."""
    if len(spec.containers) > 1:
        _check_bind_to_port(spec, images)
    _check_multi_model(spec, images)


def _check_bind_to_port(spec: InstanceSpec, images: list[LocalImage]) -> None:
    """Side by side, every container must listen where SAGEMAKER_BIND_TO_PORT says, not on 8080."""
    for c, image in zip(spec.containers, images):
        if image.labels.get(BIND_TO_PORT_LABEL, "").lower() != "true":
            raise InstanceStartError(
                f"Container {c.hostname}'s image {c.image} does not have the label {BIND_TO_PORT_LABEL}=true, "
                f"which every container of a multi-container model needs: listen on the port in "
                f"SAGEMAKER_BIND_TO_PORT and add LABEL {BIND_TO_PORT_LABEL}=true to its Dockerfile."
            )


def _check_multi_model(spec: InstanceSpec, images: list[LocalImage]) -> None:
    """A Mode MultiModel container's image must say it serves the multi-model API, as on SageMaker."""
    for c, image in zip(spec.containers, images):
        if c.multi_model and image.labels.get(MULTI_MODEL_LABEL, "").lower() != "true":
            raise InstanceStartError(
                f"Container {c.hostname}'s image {c.image} does not have the label {MULTI_MODEL_LABEL}=true, "
                f"which a model with Mode MultiModel needs: serve the multi-model API (/models) and add "
                f"LABEL {MULTI_MODEL_LABEL}=true to its Dockerfile (managed images: rebuild them with "
                f"`dockyard images build`)."
            )

"""The managed image catalogue: framework model servers dockyard provides itself.

Each managed image is addressable by a dockyard name (``dockyard/sklearn``, with any tag) and by
the AWS image URIs the SageMaker SDK generates for that framework, in any account and region
(``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3``). The
tag selects a container family's behaviour; the framework version actually installed is what
``installed_version`` reports, never assumed from the tag.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

import regex

# Matched by repository and tag, not account: the SDK uses a different account per region.
_AWS_URI = regex.compile(
    r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?P<repo>[a-z0-9._/-]+)(?::(?P<tag>[\w.-]+))?(?:@sha256:[0-9a-f]{64})?"
)
_DOCKYARD_NAME = regex.compile(r"dockyard/(?P<name>[a-z0-9-]+)(?::(?P<tag>[\w.-]+))?")


@dataclass(frozen=True)
class ManagedImage:
    name: str
    # Key of the serving framework module (DOCKYARD_FRAMEWORK).
    framework: str
    # Repository names of the matching AWS images.
    aws_repositories: tuple[str, ...]
    # The distribution that provides the framework, and the pip extra that installs it.
    distribution: str
    import_name: str
    extra: str
    example_uri: str

    @property
    def dockyard_name(self) -> str:
        return f"dockyard/{self.name}"

    def installed_version(self) -> str | None:
        if importlib.util.find_spec(self.import_name) is None:
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


CATALOGUE: tuple[ManagedImage, ...] = (
    ManagedImage(
        name="sklearn",
        framework="sklearn",
        aws_repositories=("sagemaker-scikit-learn",),
        distribution="scikit-learn",
        import_name="sklearn",
        extra="sklearn",
        example_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    ),
)


def resolve(image: str) -> ManagedImage | None:
    """The managed image an image reference names, or None for any other image."""
    match = _AWS_URI.fullmatch(image)
    if match:
        repo = match["repo"]
        return next((m for m in CATALOGUE if repo in m.aws_repositories), None)
    match = _DOCKYARD_NAME.fullmatch(image)
    if match:
        return next((m for m in CATALOGUE if m.name == match["name"]), None)
    return None

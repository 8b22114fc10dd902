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
    # More tags of the AWS images (besides example_uri's) that built images are tagged with.
    aws_tags: tuple[str, ...] = ()
    # Other distributions providing import_name (TensorFlow comes as tensorflow-cpu or tensorflow).
    alternatives: tuple[str, ...] = ()

    @property
    def dockyard_name(self) -> str:
        return f"dockyard/{self.name}"

    @property
    def uri_patterns(self) -> tuple[str, ...]:
        """The AWS image URIs this image answers to, any account, region and tag."""
        return tuple(f"<account>.dkr.ecr.<region>.amazonaws.com/{r}:<tag>" for r in self.aws_repositories)

    def installed_version(self) -> str | None:
        """The version of the distribution that provides the framework here, or None."""
        if importlib.util.find_spec(self.import_name) is None:
            return None
        for distribution in (self.distribution, *self.alternatives):
            try:
                return importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
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
        aws_tags=("1.2-1", "1.4-2-cpu-py3", "1.4-2", "1.0-1-cpu-py3", "1.0-1"),
    ),
    ManagedImage(
        name="xgboost",
        framework="xgboost",
        # ``xgboost`` is the SDK's name for the first built-in XGBoost algorithm image (``xgboost:1``).
        aws_repositories=("sagemaker-xgboost", "xgboost"),
        distribution="xgboost",
        import_name="xgboost",
        extra="xgboost",
        example_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        aws_tags=("1.7-1-cpu-py3", "1.5-1", "1.3-1", "1.2-2", "1.0-1-cpu-py3"),
    ),
    ManagedImage(
        name="pytorch",
        framework="pytorch",
        aws_repositories=("pytorch-inference", "pytorch-inference-graviton", "sagemaker-pytorch"),
        distribution="torch",
        import_name="torch",
        extra="pytorch",
        example_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
        aws_tags=("2.1.0-cpu-py310", "2.0-cpu-py310", "2.0.1-cpu-py310", "2.2-cpu-py310", "2.3-cpu-py311"),
    ),
    ManagedImage(
        name="tensorflow",
        framework="tensorflow",
        aws_repositories=("tensorflow-inference", "tensorflow-inference-graviton", "sagemaker-tensorflow-serving"),
        distribution="tensorflow-cpu",
        import_name="tensorflow",
        extra="tensorflow",
        example_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu",
        aws_tags=("2.13.0-cpu", "2.12-cpu", "2.12.1-cpu", "2.14-cpu", "2.14.1-cpu"),
        alternatives=("tensorflow",),
    ),
)

# GPU builds of the framework images (``2.1.0-gpu-py310``, ``2.13-gpu``): served on CPU here.
_GPU_TAG = regex.compile(r"(?:^|[-_.])gpu(?:$|[-_.])")


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


def gpu_tag(image: str) -> bool:
    """Whether an AWS image URI names a GPU build of its framework image."""
    match = _AWS_URI.fullmatch(image)
    return bool(match and match["tag"] and _GPU_TAG.search(match["tag"]))

"""Consistency rules beyond botocore's shapes: CreateEndpointConfig's asynchronous results go to
an s3:// (or file://) S3OutputPath, captured data to an s3:// (or file://) destination, its variants name existing models, have unique names, are
either instance-based or serverless, and a serverless variant's memory is one of SageMaker's 1 GB
steps and its ProvisionedConcurrency at most its MaxConcurrency; UpdateEndpointWeightsAndCapacities
names each variant once."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from dockyard import errors

# SageMaker's documented ServerlessConfig memory sizes; botocore carries only the minimum and maximum.
SERVERLESS_MEMORY_SIZES = tuple(range(1024, 6144 + 1, 1024))


def check_endpoint_config(params: dict[str, Any], get_model: Callable[[str], object]) -> None:
    if "AsyncInferenceConfig" in params:
        _check_async_output(params["AsyncInferenceConfig"]["OutputConfig"])
    if "DataCaptureConfig" in params:
        _check_written_location("DataCaptureConfig.DestinationS3Uri", params["DataCaptureConfig"]["DestinationS3Uri"],
                                "captured data")
    seen: set[str] = set()
    for variant in params["ProductionVariants"]:
        name = variant["VariantName"]
        if name.lower() in seen:
            raise errors.validation(f"VariantName {name} is used by more than one production variant.")
        seen.add(name.lower())
        if not variant.get("ModelName"):
            raise errors.validation(
                f"Production variant {name} has no ModelName (inference components are not supported by dockyard)."
            )
        get_model(variant["ModelName"])  # raises "Could not find model"
        serverless = "ServerlessConfig" in variant
        instance_based = "InstanceType" in variant or "InitialInstanceCount" in variant
        if serverless and instance_based:
            raise errors.validation(
                f"Production variant {name} gives both ServerlessConfig and InstanceType/InitialInstanceCount; choose one."
            )
        if serverless and "AsyncInferenceConfig" in params:
            raise errors.validation(
                f"Production variant {name} is serverless: asynchronous inference (AsyncInferenceConfig) needs "
                "instance-based variants."
            )
        if serverless:
            _check_serverless_memory(name, variant["ServerlessConfig"])
            check_provisioned_concurrency(name, variant["ServerlessConfig"])
        elif not ("InstanceType" in variant and "InitialInstanceCount" in variant):
            raise errors.validation(
                f"Production variant {name} needs InstanceType and InitialInstanceCount (or a ServerlessConfig)."
            )


def _check_serverless_memory(variant: str, config: dict[str, Any]) -> None:
    memory = config.get("MemorySizeInMB")
    if memory not in SERVERLESS_MEMORY_SIZES:
        sizes = ", ".join(map(str, SERVERLESS_MEMORY_SIZES))
        raise errors.validation(
            f"Value '{memory}' at 'ServerlessConfig.MemorySizeInMB' of production variant {variant} failed to "
            f"satisfy constraint: Member must satisfy enum value set: [{sizes}]"
        )


def check_provisioned_concurrency(variant: str, config: dict[str, Any]) -> None:
    """ProvisionedConcurrency keeps that many requests' capacity warm, so it cannot exceed MaxConcurrency."""
    provisioned, maximum = config.get("ProvisionedConcurrency"), config.get("MaxConcurrency")
    if provisioned is not None and maximum is not None and provisioned > maximum:
        raise errors.validation(
            f"ProvisionedConcurrency ({provisioned}) of production variant {variant} must be less than or "
            f"equal to MaxConcurrency ({maximum})."
        )


def check_desired_weights(desired: list[dict[str, Any]]) -> None:
    """UpdateEndpointWeightsAndCapacities: a variant named twice is ambiguous, so it is refused."""
    seen: set[str] = set()
    for entry in desired:
        name = entry["VariantName"]
        if name in seen:
            raise errors.validation(f"The variant {name} is named more than once in DesiredWeightsAndCapacities.")
        seen.add(name)


def _check_async_output(output: dict[str, Any]) -> None:
    if not output.get("S3OutputPath"):
        # Where results go: SageMaker requires it although the service model does not.
        raise errors.validation("AsyncInferenceConfig.OutputConfig.S3OutputPath is required.")
    for field in ("S3OutputPath", "S3FailurePath"):
        if field in output:
            _check_written_location(f"AsyncInferenceConfig.OutputConfig.{field}", output[field], "asynchronous results")


def _check_written_location(field: str, location: str, what: str) -> None:
    # botocore's patterns allow https://, and hosts such as "[::1" that are not URLs, but dockyard
    # writes to s3:// and file:// locations only: either would fail at every write, long after
    # the config was accepted.
    try:
        urllib.parse.urlsplit(location)
    except ValueError as exc:
        raise errors.validation(f"{field} {location} does not parse as a URL ({exc}).") from None
    if location.startswith("https://"):
        raise errors.validation(
            f"{field} {location}: dockyard writes {what} to s3://BUCKET/PREFIX (or file://) locations only; "
            "give the s3:// form."
        )

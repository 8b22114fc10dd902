"""CreateEndpointConfig consistency rules: variants name existing models, have unique names,
and are either instance-based or serverless."""

from __future__ import annotations

from typing import Any, Callable

from dockyard import errors


def check_endpoint_config(params: dict[str, Any], get_model: Callable[[str], object]) -> None:
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
        if not serverless and not ("InstanceType" in variant and "InitialInstanceCount" in variant):
            raise errors.validation(
                f"Production variant {name} needs InstanceType and InitialInstanceCount (or a ServerlessConfig)."
            )

"""What an endpoint should run, derived from its deployment snapshot.

A deployment snapshot (stored with the endpoint) holds the endpoint config and the models it
names as they were when the endpoint was created or updated. ``variant_plans`` turns it into
typed plans the reconciler and the routing table use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ContainerPlan:
    hostname: str
    definition: dict[str, Any]

    @property
    def image(self) -> str:
        return self.definition.get("Image", "")

    @property
    def multi_model(self) -> bool:
        return self.definition.get("Mode") == "MultiModel"


@dataclass(frozen=True)
class VariantPlan:
    name: str
    model_name: str
    instance_type: str
    instance_count: int
    weight: float
    startup_timeout: float | None
    # "Single" for a PrimaryContainer model, else the model's InferenceExecutionConfig.Mode.
    mode: str
    containers: tuple[ContainerPlan, ...]


def model_containers(model_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The container definitions of a CreateModel spec, PrimaryContainer or Containers."""
    if "PrimaryContainer" in model_spec:
        return [model_spec["PrimaryContainer"]]
    return list(model_spec.get("Containers", ()))


def container_plans(model_spec: dict[str, Any]) -> tuple[ContainerPlan, ...]:
    if "PrimaryContainer" in model_spec:
        # SageMaker calls a single container "primary" in its error messages.
        return (ContainerPlan("primary", model_spec["PrimaryContainer"]),)
    return tuple(
        ContainerPlan(c.get("ContainerHostname") or f"container-{i}", c)
        for i, c in enumerate(model_spec.get("Containers", ()), start=1)
    )


def execution_mode(model_spec: dict[str, Any]) -> str:
    if "PrimaryContainer" in model_spec:
        return "Single"
    return model_spec.get("InferenceExecutionConfig", {}).get("Mode", "Serial")


def build_deployment(config_name: str, config_spec: dict[str, Any], models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The snapshot stored with an endpoint: config, models, and the variants' desired state."""
    variants = {
        v["VariantName"]: {
            "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
            # A serverless variant runs as one instance here.
            "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
        }
        for v in config_spec["ProductionVariants"]
    }
    return {"EndpointConfigName": config_name, "EndpointConfig": config_spec, "Models": models, "Variants": variants}


def variant_plans(deployment: dict[str, Any]) -> list[VariantPlan]:
    plans = []
    for v in deployment["EndpointConfig"]["ProductionVariants"]:
        model = deployment["Models"][v["ModelName"]]
        state = deployment["Variants"][v["VariantName"]]
        timeout = v.get("ContainerStartupHealthCheckTimeoutInSeconds")
        plans.append(
            VariantPlan(
                name=v["VariantName"],
                model_name=v["ModelName"],
                instance_type=v.get("InstanceType", "ml.serverless"),
                instance_count=state["DesiredInstanceCount"],
                weight=state["DesiredWeight"],
                startup_timeout=float(timeout) if timeout else None,
                mode=execution_mode(model),
                containers=container_plans(model),
            )
        )
    return plans


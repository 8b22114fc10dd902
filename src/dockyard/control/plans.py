"""What an endpoint should run, derived from its deployment snapshot.

A deployment snapshot (stored with the endpoint) holds the endpoint config and the models it
names as they were when the endpoint was created or updated (``Deployment``); its ``plans`` are the
typed per-variant view the reconciler and the endpoint operations use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from dockyard.runtime.instance_types import serverless_instance_type


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
    # The variant's VolumeSizeInGB: what one instance's model data may take (None: the setting).
    volume_bytes: int | None = None
    # A serverless variant's memory and concurrency (None: instance-based).
    serverless: ServerlessPlan | None = None


@dataclass(frozen=True)
class ServerlessPlan:
    """A serverless variant: one instance of ``memory_mb``, at most ``max_concurrency`` requests in
    flight, and kept warm through idle periods when it has a ``provisioned_concurrency``."""

    memory_mb: int
    max_concurrency: int
    provisioned_concurrency: int | None

    def as_config(self) -> dict[str, int]:
        """The plan as DescribeEndpoint's Current/DesiredServerlessConfig."""
        config = {"MemorySizeInMB": self.memory_mb, "MaxConcurrency": self.max_concurrency}
        if self.provisioned_concurrency is not None:
            config["ProvisionedConcurrency"] = self.provisioned_concurrency
        return config


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


@dataclass(frozen=True)
class VariantState:
    """A variant's desired weight and instance count, and a serverless variant's concurrency (what
    UpdateEndpointWeightsAndCapacities sets; ``serverless`` holds MaxConcurrency and
    ProvisionedConcurrency as ServerlessConfig names them)."""

    weight: float
    instance_count: int
    serverless: dict[str, int] | None = None


@dataclass(frozen=True)
class Deployment:
    """The snapshot stored with an endpoint: its config and the models it names as they were at
    CreateEndpoint/UpdateEndpoint (SageMaker lets users delete both while the endpoint keeps
    running), and each variant's desired state. Stored as JSON in the shape of ``to_json``."""

    config_name: str
    config: dict[str, Any]
    models: dict[str, dict[str, Any]]
    variants: dict[str, VariantState]

    @classmethod
    def build(cls, config_name: str, config_spec: dict[str, Any], models: dict[str, dict[str, Any]]) -> Deployment:
        variants = {
            v["VariantName"]: VariantState(
                float(v.get("InitialVariantWeight", 1.0)),
                # A serverless variant runs as one instance here (none while scaled to zero).
                int(v.get("InitialInstanceCount", 1)),
                _concurrency(v["ServerlessConfig"]) if "ServerlessConfig" in v else None,
            )
            for v in config_spec["ProductionVariants"]
        }
        return cls(config_name, config_spec, models, variants)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        variants = {
            name: VariantState(float(v["DesiredWeight"]), int(v["DesiredInstanceCount"]), v.get("DesiredServerlessConfig"))
            for name, v in data["Variants"].items()
        }
        return cls(data["EndpointConfigName"], data["EndpointConfig"], data["Models"], variants)

    def to_json(self) -> dict[str, Any]:
        return {
            "EndpointConfigName": self.config_name,
            "EndpointConfig": self.config,
            "Models": self.models,
            "Variants": {
                name: {"DesiredWeight": v.weight, "DesiredInstanceCount": v.instance_count,
                       **({"DesiredServerlessConfig": v.serverless} if v.serverless is not None else {})}
                for name, v in self.variants.items()
            },
        }

    def with_variants(self, variants: dict[str, VariantState]) -> Deployment:
        return replace(self, variants={**self.variants, **variants})

    @cached_property
    def plans(self) -> tuple[VariantPlan, ...]:
        """The variants as typed plans, in the config's order (parsed once per snapshot)."""
        plans = []
        for v in self.config["ProductionVariants"]:
            model = self.models[v["ModelName"]]
            state = self.variants[v["VariantName"]]
            timeout = v.get("ContainerStartupHealthCheckTimeoutInSeconds")
            volume = v.get("VolumeSizeInGB")
            serverless = _serverless_plan(v, state)
            plans.append(
                VariantPlan(
                    name=v["VariantName"],
                    model_name=v["ModelName"],
                    instance_type=serverless_instance_type(serverless.memory_mb) if serverless else v["InstanceType"],
                    instance_count=state.instance_count,
                    weight=state.weight,
                    startup_timeout=float(timeout) if timeout else None,
                    mode=execution_mode(model),
                    containers=container_plans(model),
                    volume_bytes=int(volume) * 1024**3 if volume else None,
                    serverless=serverless,
                )
            )
        return tuple(plans)

    @property
    def containers_needed(self) -> int:
        return sum(p.instance_count * len(p.containers) for p in self.plans)


def _concurrency(config: dict[str, Any]) -> dict[str, int]:
    return {k: int(config[k]) for k in ("MaxConcurrency", "ProvisionedConcurrency") if k in config}


def _serverless_plan(variant: dict[str, Any], state: VariantState) -> ServerlessPlan | None:
    if "ServerlessConfig" not in variant:
        return None
    # The config's concurrency as UpdateEndpointWeightsAndCapacities last changed it.
    concurrency = {**_concurrency(variant["ServerlessConfig"]), **(state.serverless or {})}
    return ServerlessPlan(int(variant["ServerlessConfig"]["MemorySizeInMB"]), concurrency["MaxConcurrency"],
                          concurrency.get("ProvisionedConcurrency"))

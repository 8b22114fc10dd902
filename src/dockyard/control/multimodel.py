"""Multi-model endpoints, the control side: CreateModel's rules for ``Mode: MultiModel`` and
what the gateway is handed to serve a multi-model variant (``MultiModelRoute``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard import errors
from dockyard.control.plans import VariantPlan
from dockyard.gateway.multimodel import MultiModelRoute
from dockyard.runtime.base import RunningInstance
from dockyard.runtime.instance_types import resources_for


def check_container(container: dict[str, Any], where: str, primary: bool) -> None:
    """A multi-model container: the only container of its model, with a ModelDataUrl prefix."""
    if container.get("Mode") != "MultiModel":
        return
    if not primary:
        # SageMaker: multi-model hosting is for single-container models only.
        raise errors.validation(
            f"{where}: Mode MultiModel is not supported for multi-container models (Containers); "
            "use PrimaryContainer."
        )
    if not container.get("ModelDataUrl"):
        raise errors.validation(
            f"{where}: Mode MultiModel needs a ModelDataUrl naming the prefix the models are loaded from "
            "(s3://bucket/models/, or a local directory)."
        )


def route(plan: VariantPlan, instances: Sequence[RunningInstance]) -> MultiModelRoute | None:
    """The gateway's view of a multi-model variant (None for any other)."""
    if not plan.containers or not plan.containers[0].multi_model:
        return None
    definition = plan.containers[0].definition
    prefix = definition["ModelDataUrl"]
    setting = definition.get("MultiModelConfig", {}).get("ModelCacheSetting", "Enabled")
    return MultiModelRoute(
        prefix=prefix if prefix.endswith("/") else prefix + "/",
        cache_enabled=setting != "Disabled",
        model_dirs={i.spec.instance_id: (i.spec.containers[0].model_dir,
                                         i.containers[0].model_dir_inside or str(i.spec.containers[0].model_dir))
                    for i in instances},
        volume_bytes=plan.volume_bytes,
        memory_bytes=resources.memory_bytes if (resources := resources_for(plan.instance_type)) else None,
    )

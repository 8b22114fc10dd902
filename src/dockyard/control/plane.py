"""The control plane: SageMaker hosting operations by name, over one store."""

from __future__ import annotations

from typing import Any, Callable

from dockyard.control.context import ControlContext
from dockyard.control.endpoints import EndpointOps
from dockyard.control.resources import endpoint_config_ops, model_ops
from dockyard.control.tags import TagOps

Operation = Callable[[dict[str, Any]], dict[str, Any]]


def operations(ctx: ControlContext) -> dict[str, Operation]:
    """The implemented operations, keyed by their SageMaker name (``X-Amz-Target`` suffix)."""
    models = model_ops(ctx)
    configs = endpoint_config_ops(ctx, models)
    endpoints = EndpointOps(ctx, models, configs)
    tags = TagOps(ctx)
    return {
        "CreateModel": models.create,
        "DescribeModel": models.describe,
        "ListModels": lambda p: models.list(p, "Models"),
        "DeleteModel": models.delete,
        "CreateEndpointConfig": configs.create,
        "DescribeEndpointConfig": configs.describe,
        "ListEndpointConfigs": lambda p: configs.list(p, "EndpointConfigs"),
        "DeleteEndpointConfig": configs.delete,
        "CreateEndpoint": endpoints.create,
        "DescribeEndpoint": endpoints.describe,
        "ListEndpoints": endpoints.list,
        "DeleteEndpoint": endpoints.delete,
        "UpdateEndpoint": endpoints.update,
        "UpdateEndpointWeightsAndCapacities": endpoints.update_weights_and_capacities,
        "AddTags": tags.add,
        "ListTags": tags.list,
        "DeleteTags": tags.delete,
    }

"""The control plane: SageMaker hosting operations by name, over one store.

Each operation runs whole on the store's thread: its SQLite calls never block the event loop
that carries invocations, and operations never interleave with each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.control.context import ControlContext
from dockyard.control.endpoints import EndpointOps
from dockyard.control.resources import endpoint_config_ops, model_ops
from dockyard.control.tags import TagOps

Params = dict[str, Any]
Operation = Callable[[Params], Awaitable[Params]]


def operations(ctx: ControlContext) -> dict[str, Operation]:
    """The implemented operations, keyed by their SageMaker name (``X-Amz-Target`` suffix)."""

    def on_store_thread(operation: Callable[[Params], Params]) -> Operation:
        async def run(params: Params) -> Params:
            return await ctx.store.run(operation, params)

        return run

    return {name: on_store_thread(op) for name, op in _sync_operations(ctx).items()}


def _sync_operations(ctx: ControlContext) -> dict[str, Callable[[Params], Params]]:
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

"""The control plane: SageMaker hosting operations and the Application Auto Scaling operations
for its variants, by name, over one store.

Each operation runs whole on the store's thread: its SQLite calls never block the event loop
that carries invocations, and operations never interleave with each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.control.context import ControlContext
from dockyard.control.endpoints import EndpointOps
from dockyard.control.resources import endpoint_config_ops, model_ops
from dockyard.control.scalable_targets import ScalingOps
from dockyard.control.tags import TagOps

Params = dict[str, Any]
Operation = Callable[[Params], Awaitable[Params]]


def operations(ctx: ControlContext) -> dict[str, Operation]:
    """The implemented operations, keyed by their SageMaker name (``X-Amz-Target`` suffix)."""
    return _on_store_thread(ctx, _sync_operations(ctx))


def autoscaling_operations(ctx: ControlContext) -> dict[str, Operation]:
    """The Application Auto Scaling operations, keyed by name (``AnyScaleFrontendService.<name>``)."""
    scaling = ScalingOps(ctx)
    return _on_store_thread(ctx, {
        "RegisterScalableTarget": scaling.register,
        "DescribeScalableTargets": scaling.describe_targets,
        "DeregisterScalableTarget": scaling.deregister,
        "PutScalingPolicy": scaling.put_policy,
        "DescribeScalingPolicies": scaling.describe_policies,
        "DeleteScalingPolicy": scaling.delete_policy,
        "DescribeScalingActivities": scaling.describe_activities,
    })


def endpoint_ops(ctx: ControlContext) -> EndpointOps:
    models = model_ops(ctx)
    return EndpointOps(ctx, models, endpoint_config_ops(ctx, models))


def _on_store_thread(ctx: ControlContext, sync: dict[str, Callable[[Params], Params]]) -> dict[str, Operation]:
    def on_store_thread(operation: Callable[[Params], Params]) -> Operation:
        async def run(params: Params) -> Params:
            return await ctx.store.run(operation, params)

        return run

    return {name: on_store_thread(op) for name, op in sync.items()}


def _sync_operations(ctx: ControlContext) -> dict[str, Callable[[Params], Params]]:
    endpoints = endpoint_ops(ctx)
    models, configs = endpoints.models, endpoints.configs
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

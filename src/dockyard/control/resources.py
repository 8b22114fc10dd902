"""Models and endpoint configs: create, describe, list and delete of stored specs.

Both are records that never change after creation, so one class serves both; each kind adds its
own consistency rules (``check``) on top of the shape validation the API layer already did.
"""

from __future__ import annotations

from typing import Any, Callable

from dockyard import errors
from dockyard.artifacts.policy import AccessPolicy
from dockyard.control import listing
from dockyard.control.config_rules import check_endpoint_config
from dockyard.control.context import ControlContext
from dockyard.control.model_rules import check_model
from dockyard.control.store import ENDPOINT_CONFIG, MODEL, AlreadyExists, Resource

Params = dict[str, Any]


class ResourceOps:
    """Create/Describe/List/Delete for one kind of stored resource."""

    def __init__(
        self,
        ctx: ControlContext,
        kind: str,
        label: str,
        prefix: str,
        check: Callable[[Params], None],
        describe_defaults: Params | None = None,
    ) -> None:
        self.ctx, self.kind, self.label, self.prefix = ctx, kind, label, prefix
        self._check = check
        self._defaults = describe_defaults or {}

    def _name(self, params: Params) -> str:
        return params[f"{self.prefix}Name"]

    def get(self, name: str) -> Resource:
        res = self.ctx.store.get_resource(self.kind, name)
        if res is None:
            raise errors.not_found(self.label, self.ctx.settings.arn(self.kind, name))
        return res

    def create(self, params: Params) -> Params:
        name = self._name(params)
        arn = self.ctx.settings.arn(self.kind, name)
        self._check(params)
        spec = {k: v for k, v in params.items() if k != "Tags"}
        try:
            self.ctx.store.insert_resource(Resource(self.kind, name, arn, self.ctx.clock(), spec), params.get("Tags", []))
        except AlreadyExists:
            raise errors.already_exists(self.label, arn) from None
        return {f"{self.prefix}Arn": arn}

    def describe(self, params: Params) -> Params:
        res = self.get(self._name(params))
        return {**self._defaults, **res.spec, f"{self.prefix}Arn": res.arn, "CreationTime": res.creation_time}

    def list(self, params: Params, member: str) -> Params:
        page, token = listing.paginate(
            self.ctx.store.list_resources(self.kind),
            params,
            summary=lambda r: {f"{self.prefix}Name": r.name, f"{self.prefix}Arn": r.arn, "CreationTime": r.creation_time},
            sort_keys={"CreationTime": lambda r: r.creation_time, "Name": lambda r: r.name.lower()},
            filters=listing.common_filters(lambda r: r.name, lambda r: r.creation_time),
        )
        return {member: page, **({"NextToken": token} if token else {})}

    def delete(self, params: Params) -> Params:
        name = self._name(params)
        if self.ctx.store.delete_resource(self.kind, name) is None:
            raise errors.not_found(self.label, self.ctx.settings.arn(self.kind, name))
        return {}


def model_ops(ctx: ControlContext) -> ResourceOps:
    roots = AccessPolicy.from_settings(ctx.settings).allow_paths
    return ResourceOps(ctx, MODEL, "model", "Model", lambda params: check_model(params, roots),
                       {"EnableNetworkIsolation": False})


def endpoint_config_ops(ctx: ControlContext, models: ResourceOps) -> ResourceOps:
    return ResourceOps(
        ctx, ENDPOINT_CONFIG, "endpoint configuration", "EndpointConfig",
        lambda params: check_endpoint_config(params, models.get),
    )

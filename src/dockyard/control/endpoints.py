"""Endpoints: the control plane's side of the lifecycle.

Operations only record desired state (status Creating, Updating or Deleting, and a deployment
snapshot) and ring the reconciler; the reconciler does the work and moves the status on to
InService, Failed or gone.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard import errors
from dockyard.control import listing
from dockyard.control.config_rules import check_desired_weights
from dockyard.control.context import ControlContext
from dockyard.control.plans import build_deployment, variant_plans
from dockyard.control.resources import ResourceOps
from dockyard.control.store import AlreadyExists, Endpoint

Params = dict[str, Any]
STATUSES_IN_PROGRESS = ("Creating", "Updating", "Deleting", "SystemUpdating", "RollingBack")


class EndpointOps:
    def __init__(self, ctx: ControlContext, models: ResourceOps, configs: ResourceOps) -> None:
        self.ctx, self.models, self.configs = ctx, models, configs

    def _arn(self, name: str) -> str:
        return self.ctx.settings.arn("endpoint", name)

    def get(self, name: str) -> Endpoint:
        ep = self.ctx.store.get_endpoint(name)
        if ep is None:
            raise errors.not_found("endpoint", self._arn(name))
        return ep

    def _snapshot(self, config_name: str) -> dict[str, Any]:
        config = self.configs.get(config_name)
        model_names = {v["ModelName"] for v in config.spec["ProductionVariants"]}
        models = {name: self.models.get(name).spec for name in sorted(model_names)}
        return build_deployment(config.name, config.spec, models)

    def _containers_in_use(self) -> int:
        return sum(
            p.instance_count * len(p.containers)
            for ep in self.ctx.store.list_endpoints()
            for p in variant_plans(ep.pending or ep.deployment)
        )

    def _check_limit(self, deployment: dict[str, Any]) -> None:
        wanted = sum(p.instance_count * len(p.containers) for p in variant_plans(deployment))
        limit = self.ctx.settings.max_containers
        in_use = self._containers_in_use()
        if in_use + wanted > limit:
            raise errors.limit_exceeded(
                f"This deployment needs {wanted} containers and {in_use} are already running; dockyard is "
                f"limited to {limit} (set DOCKYARD_MAX_CONTAINERS)."
            )

    # --- operations --------------------------------------------------------------------------

    def create(self, params: Params) -> Params:
        name = params["EndpointName"]
        arn = self._arn(name)
        if self.ctx.store.get_endpoint(name) is not None:
            raise errors.already_exists("endpoint", arn)
        deployment = self._snapshot(params["EndpointConfigName"])
        self._check_limit(deployment)
        now = self.ctx.clock()
        ep = Endpoint(name, arn, deployment["EndpointConfigName"], "Creating", None, now, now, deployment, None)
        try:
            self.ctx.store.insert_endpoint(ep, params.get("Tags", []))
        except AlreadyExists:
            raise errors.already_exists("endpoint", arn) from None
        self.ctx.changed()
        return {"EndpointArn": arn}

    def describe(self, params: Params) -> Params:
        ep = self.get(params["EndpointName"])
        out: Params = {
            "EndpointName": ep.name,
            "EndpointArn": ep.arn,
            "EndpointConfigName": ep.config_name,
            "ProductionVariants": self._variant_summaries(ep),
            "EndpointStatus": ep.status,
            "CreationTime": ep.creation_time,
            "LastModifiedTime": ep.last_modified,
        }
        if ep.failure_reason:
            out["FailureReason"] = ep.failure_reason
        if ep.pending is not None:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": ep.pending["EndpointConfigName"],
                "ProductionVariants": [
                    {"VariantName": p.name, "DesiredWeight": p.weight, "DesiredInstanceCount": p.instance_count}
                    for p in variant_plans(ep.pending)
                ],
                "StartTime": ep.last_modified,
            }
        return out

    def _variant_summaries(self, ep: Endpoint) -> list[Params]:
        serving = ep.status in ("InService", "Updating")
        summaries = []
        for plan in variant_plans(ep.deployment):
            summary: Params = {
                "VariantName": plan.name,
                "DeployedImages": [
                    {"SpecifiedImage": c.image, "ResolvedImage": c.image, "ResolutionTime": ep.creation_time}
                    for c in plan.containers
                ],
                "DesiredWeight": plan.weight,
                "DesiredInstanceCount": plan.instance_count,
            }
            if serving:
                summary["CurrentWeight"] = plan.weight
                summary["CurrentInstanceCount"] = plan.instance_count
            elif ep.status in STATUSES_IN_PROGRESS:
                summary["VariantStatus"] = [{"Status": ep.status, "StartTime": ep.last_modified}]
            summaries.append(summary)
        return summaries

    def list(self, params: Params) -> Params:
        page, token = listing.paginate(
            self.ctx.store.list_endpoints(),
            params,
            summary=lambda e: {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.creation_time,
                "LastModifiedTime": e.last_modified,
                "EndpointStatus": e.status,
            },
            sort_keys={
                "CreationTime": lambda e: e.creation_time,
                "Name": lambda e: e.name.lower(),
                "Status": lambda e: e.status,
            },
            filters={
                **listing.common_filters(lambda e: e.name, lambda e: e.creation_time),
                **listing.last_modified_filters(lambda e: e.last_modified),
                "StatusEquals": lambda e, v: e.status == v,
            },
        )
        return {"Endpoints": page, **({"NextToken": token} if token else {})}

    def delete(self, params: Params) -> Params:
        ep = self.get(params["EndpointName"])
        # SageMaker allows DeleteEndpoint from any state; the reconciler stops what runs.
        self.ctx.store.update_endpoint(ep.name, status="Deleting", last_modified=self.ctx.clock())
        self.ctx.changed()
        return {}

    def _require_in_service(self, ep: Endpoint) -> None:
        if ep.status != "InService":
            raise errors.validation(
                f'Cannot update in-progress endpoint "{ep.arn}".'
                if ep.status in STATUSES_IN_PROGRESS
                else f'Cannot update endpoint "{ep.arn}" in status {ep.status}; only InService endpoints can be updated.'
            )

    def _begin_update(self, ep: Endpoint, pending: dict[str, Any]) -> Params:
        # Blue/green: the old instances keep serving until the new ones pass /ping.
        self._check_limit(pending)
        self.ctx.store.update_endpoint(
            ep.name, status="Updating", pending=pending, last_modified=self.ctx.clock(), failure_reason=None
        )
        self.ctx.changed()
        return {"EndpointArn": ep.arn}

    def update(self, params: Params) -> Params:
        ep = self.get(params["EndpointName"])
        self._require_in_service(ep)
        pending = self._snapshot(params["EndpointConfigName"])
        if params.get("RetainAllVariantProperties"):
            excluded = {p["VariantPropertyType"] for p in params.get("ExcludeRetainedVariantProperties", [])}
            for name, state in pending["Variants"].items():
                old = ep.deployment["Variants"].get(name)
                for prop in ("DesiredWeight", "DesiredInstanceCount"):
                    if old is not None and prop not in excluded:
                        state[prop] = old[prop]
        return self._begin_update(ep, pending)

    def update_weights_and_capacities(self, params: Params) -> Params:
        ep = self.get(params["EndpointName"])
        self._require_in_service(ep)
        check_desired_weights(params["DesiredWeightsAndCapacities"])
        pending = copy.deepcopy(ep.deployment)
        for desired in params["DesiredWeightsAndCapacities"]:
            state = pending["Variants"].get(desired["VariantName"])
            if state is None:
                raise errors.validation(
                    f'The variant {desired["VariantName"]} does not exist in endpoint "{ep.arn}".'
                )
            if "DesiredWeight" in desired:
                state["DesiredWeight"] = float(desired["DesiredWeight"])
            if "DesiredInstanceCount" in desired:
                if desired["DesiredInstanceCount"] < 1:
                    raise errors.validation("DesiredInstanceCount must be at least 1 for an instance-based variant.")
                state["DesiredInstanceCount"] = int(desired["DesiredInstanceCount"])
        return self._begin_update(ep, pending)

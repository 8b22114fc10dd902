"""Endpoints: the control plane's side of the lifecycle.

Operations only record desired state (status Creating, Updating or Deleting, and a deployment
snapshot) and ring the reconciler; the reconciler does the work and moves the status on to
InService, Failed or gone.
"""

from __future__ import annotations

from typing import Any

from dockyard import errors
from dockyard.control import listing
from dockyard.control.config_rules import (
    check_desired_weights,
    check_provisioned_concurrency,
)
from dockyard.control.context import ControlContext
from dockyard.control.plans import Deployment, VariantPlan, VariantState
from dockyard.control.resources import ResourceOps
from dockyard.control.scaling_store import ScalingStore
from dockyard.control.status import EndpointStatus, can_update
from dockyard.control.store import AlreadyExists, Endpoint

Params = dict[str, Any]


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

    def _snapshot(self, config_name: str) -> Deployment:
        config = self.configs.get(config_name)
        model_names = {v["ModelName"] for v in config.spec["ProductionVariants"]}
        models = {name: self.models.get(name).spec for name in sorted(model_names)}
        return Deployment.build(config.name, config.spec, models)

    def _containers_in_use(self) -> int:
        return sum((ep.pending or ep.deployment).containers_needed for ep in self.ctx.store.list_endpoints())

    def _check_limit(self, deployment: Deployment) -> None:
        wanted = deployment.containers_needed
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
        ep = Endpoint(name, arn, deployment.config_name, EndpointStatus.CREATING, now, now,
                      failure_reason=None, deployment=deployment, pending=None)
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
            "EndpointStatus": ep.status.value,
            "CreationTime": ep.creation_time,
            "LastModifiedTime": ep.last_modified,
        }
        if ep.failure_reason:
            out["FailureReason"] = ep.failure_reason
        if "AsyncInferenceConfig" in ep.deployment.config:
            out["AsyncInferenceConfig"] = ep.deployment.config["AsyncInferenceConfig"]
        capture = (ep.pending or ep.deployment).config.get("DataCaptureConfig")
        if capture:
            out["DataCaptureConfig"] = _capture_summary(capture)
        if ep.pending is not None:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": ep.pending.config_name,
                "ProductionVariants": [
                    {"VariantName": p.name, "DesiredWeight": p.weight, **_desired_capacity(p)}
                    for p in ep.pending.plans
                ],
                "StartTime": ep.last_modified,
            }
        return out

    def _variant_summaries(self, ep: Endpoint) -> list[Params]:
        summaries = []
        # An UpdateEndpointWeightsAndCapacities (or the autoscaler's) in progress: the variants'
        # Desired* are already the new ones, Current* the ones still serving.
        desired = {p.name: p for p in ep.pending.plans} if ep.pending and ep.pending.config_name == ep.config_name else {}
        for plan in ep.deployment.plans:
            summary: Params = {
                "VariantName": plan.name,
                "DeployedImages": [
                    {"SpecifiedImage": c.image, "ResolvedImage": c.image, "ResolutionTime": ep.creation_time}
                    for c in plan.containers
                ],
                "DesiredWeight": desired.get(plan.name, plan).weight,
                **_desired_capacity(desired.get(plan.name, plan)),
            }
            if ep.status.serving:
                summary["CurrentWeight"] = plan.weight
                if plan.serverless is not None:
                    summary["CurrentServerlessConfig"] = plan.serverless.as_config()
                else:
                    summary["CurrentInstanceCount"] = plan.instance_count
            elif ep.status.in_progress:
                summary["VariantStatus"] = [{"Status": ep.status.value, "StartTime": ep.last_modified}]
            summaries.append(summary)
        return summaries

    def list(self, params: Params) -> Params:
        page, token = listing.paginate(
            self.ctx.store.endpoint_summaries(),
            params,
            summary=lambda e: {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.creation_time,
                "LastModifiedTime": e.last_modified,
                "EndpointStatus": e.status.value,
            },
            sort_keys={
                "CreationTime": lambda e: e.creation_time,
                "Name": lambda e: e.name.lower(),
                "Status": lambda e: e.status.value,
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
        if ep.status != EndpointStatus.DELETING:
            self.ctx.store.update_endpoint(ep.name, ep.status, status=EndpointStatus.DELETING,
                                           last_modified=self.ctx.clock())
        self.ctx.changed()
        return {}

    def _require_in_service(self, ep: Endpoint) -> None:
        if not can_update(ep.status):
            raise errors.validation(
                f'Cannot update in-progress endpoint "{ep.arn}".'
                if ep.status.in_progress
                else f'Cannot update endpoint "{ep.arn}" in status {ep.status}; only InService endpoints can be updated.'
            )

    def _begin_update(self, ep: Endpoint, pending: Deployment) -> Params:
        # Blue/green: the old instances keep serving until the new ones pass /ping.
        self._check_limit(pending)
        self.ctx.store.update_endpoint(
            ep.name, ep.status, status=EndpointStatus.UPDATING, pending=pending, last_modified=self.ctx.clock(),
            failure_reason=None,
        )
        self.ctx.changed()
        return {"EndpointArn": ep.arn}

    def update(self, params: Params) -> Params:
        ep = self.get(params["EndpointName"])
        self._require_in_service(ep)
        pending = self._snapshot(params["EndpointConfigName"])
        if params.get("RetainAllVariantProperties"):
            excluded = {p["VariantPropertyType"] for p in params.get("ExcludeRetainedVariantProperties", [])}
            retained = {}
            for name, state in pending.variants.items():
                old = ep.deployment.variants.get(name)
                if old is not None:
                    retained[name] = VariantState(
                        state.weight if "DesiredWeight" in excluded else old.weight,
                        state.instance_count if "DesiredInstanceCount" in excluded else old.instance_count,
                        state.serverless,  # the new config's ServerlessConfig is what it asks for
                    )
            pending = pending.with_variants(retained)
        self._check_scaled_variants(ep, pending)
        return self._begin_update(ep, pending)

    def _check_scaled_variants(self, ep: Endpoint, pending: Deployment) -> None:
        """SageMaker refuses an UpdateEndpoint that removes a variant registered for autoscaling or
        changes its instance type (a new model is allowed): deregister it first."""
        new = {p.name: p for p in pending.plans}
        for target in ScalingStore(self.ctx.store).targets():
            if target.endpoint.lower() != ep.name.lower():
                continue
            old = next((p for p in ep.deployment.plans if p.name == target.variant), None)
            plan = new.get(target.variant)
            if old is not None and (plan is None or plan.instance_type != old.instance_type):
                change = "remove it" if plan is None else f"change its instance type to {plan.instance_type}"
                raise errors.validation(
                    f'Cannot update endpoint "{ep.arn}": variant {target.variant} is registered for autoscaling, and '
                    f"the update would {change}. Deregister the scalable target "
                    f"{target.resource_id} (DeregisterScalableTarget) first."
                )

    def update_weights_and_capacities(self, params: Params) -> Params:
        ep = self.get(params["EndpointName"])
        self._require_in_service(ep)
        check_desired_weights(params["DesiredWeightsAndCapacities"])
        changed = {}
        for desired in params["DesiredWeightsAndCapacities"]:
            state = ep.deployment.variants.get(desired["VariantName"])
            if state is None:
                raise errors.validation(
                    f'The variant {desired["VariantName"]} does not exist in endpoint "{ep.arn}".'
                )
            if state.serverless is not None:
                changed[desired["VariantName"]] = _serverless_update(desired, state)
                continue
            if "ServerlessUpdateConfig" in desired:
                raise errors.validation(
                    f'ServerlessUpdateConfig is only allowed for serverless variants; variant {desired["VariantName"]} '
                    "is instance-based."
                )
            # An asynchronous endpoint may have no instance (autoscaling's MinCapacity 0): its
            # requests wait in the backlog until one starts.
            if desired.get("DesiredInstanceCount", 1) < (0 if "AsyncInferenceConfig" in ep.deployment.config else 1):
                raise errors.validation("DesiredInstanceCount must be at least 1 for an instance-based variant.")
            changed[desired["VariantName"]] = VariantState(
                float(desired.get("DesiredWeight", state.weight)),
                int(desired.get("DesiredInstanceCount", state.instance_count)),
            )
        return self._begin_update(ep, ep.deployment.with_variants(changed))


def _desired_capacity(plan: VariantPlan) -> Params:
    """A variant's desired capacity as DescribeEndpoint reports it: instances, or serverless concurrency."""
    if plan.serverless is not None:
        return {"DesiredServerlessConfig": plan.serverless.as_config()}
    return {"DesiredInstanceCount": plan.instance_count}


def _serverless_update(desired: Params, state: VariantState) -> VariantState:
    """A serverless variant's new state: its weight, and MaxConcurrency/ProvisionedConcurrency from
    ServerlessUpdateConfig (an instance count means nothing to it)."""
    name = desired["VariantName"]
    if "DesiredInstanceCount" in desired:
        raise errors.validation(
            f"DesiredInstanceCount is not allowed for serverless variant {name}; use ServerlessUpdateConfig."
        )
    concurrency = {**(state.serverless or {}), **desired.get("ServerlessUpdateConfig", {})}
    check_provisioned_concurrency(name, concurrency)
    return VariantState(float(desired.get("DesiredWeight", state.weight)), state.instance_count, concurrency)


def _capture_summary(capture: Params) -> Params:
    """DescribeEndpoint's DataCaptureConfigSummary of an endpoint config's DataCaptureConfig (the
    rate follows UpdateEndpoint from the call on: capture/ reads the pending config too)."""
    enabled = capture.get("EnableCapture", True)
    out: Params = {
        "EnableCapture": enabled,
        "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
        "DestinationS3Uri": capture["DestinationS3Uri"],
    }
    if capture.get("KmsKeyId"):
        out["KmsKeyId"] = capture["KmsKeyId"]
    return out

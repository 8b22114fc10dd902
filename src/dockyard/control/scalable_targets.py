"""The Application Auto Scaling operations (``AnyScaleFrontendService.*``) for SageMaker variants.

They record scalable targets and scaling policies in the store and list the scaling activities
the scaler (``control/autoscaling.py``) records; they change no endpoint themselves. dockyard
scales one thing: ``ServiceNamespace=sagemaker``, ``ResourceId=endpoint/<name>/variant/<variant>``,
``ScalableDimension=sagemaker:variant:DesiredInstanceCount``, with TargetTrackingScaling policies
(``control/target_tracking.py`` says which metrics). Each operation runs whole on the store's
thread, as the SageMaker operations do.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from dockyard import errors
from dockyard.control import listing
from dockyard.control.context import ControlContext
from dockyard.control.scaling_store import ScalableTarget, ScalingPolicy, ScalingStore
from dockyard.control.store import Endpoint
from dockyard.control.target_tracking import TargetTracking

Params = dict[str, Any]
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
_RESOURCE_ID = re.compile(r"endpoint/([^/]+)/variant/([^/]+)")
DEFAULT_MAX_RESULTS = 50  # Application Auto Scaling's default page size


def parse_resource_id(resource_id: str) -> tuple[str, str]:
    """(endpoint, variant) of ``endpoint/<name>/variant/<variant>``; ValidationException otherwise."""
    match = _RESOURCE_ID.fullmatch(resource_id)
    if match is None:
        raise errors.validation(
            f"Unsupported ResourceId {resource_id!r} for service namespace {NAMESPACE}; expected "
            "endpoint/<endpoint-name>/variant/<variant-name>."
        )
    return match.group(1), match.group(2)


def is_async(ep: Endpoint) -> bool:
    return "AsyncInferenceConfig" in ep.deployment.config


class ScalingOps:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.records = ScalingStore(ctx.store)

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.ctx.settings.region}:{self.ctx.settings.account_id}:{resource}"

    def _role_arn(self) -> str:
        # The service-linked role AWS reports for SageMaker scalable targets.
        return (f"arn:aws:iam::{self.ctx.settings.account_id}:role/aws-service-role/sagemaker.application-autoscaling."
                "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")

    def _variant(self, params: Params) -> tuple[str, str]:
        """The (endpoint, variant) a request names, once its namespace and dimension are ours."""
        if params["ServiceNamespace"] != NAMESPACE:
            raise errors.validation(
                f"dockyard scales only service namespace {NAMESPACE}, not {params['ServiceNamespace']}."
            )
        if params["ScalableDimension"] != DIMENSION:
            raise errors.validation(
                f"Unsupported scalable dimension {params['ScalableDimension']} for service namespace {NAMESPACE}; "
                f"dockyard scales {DIMENSION}."
            )
        return parse_resource_id(params["ResourceId"])

    def _target(self, params: Params) -> ScalableTarget:
        endpoint, variant = self._variant(params)
        target = self.records.target(endpoint, variant)
        if target is None:
            raise errors.object_not_found(
                f"No scalable target registered for service namespace: {NAMESPACE}, resource ID: "
                f"{params['ResourceId']}, scalable dimension: {DIMENSION}"
            )
        return target

    def _endpoint(self, endpoint: str, variant: str) -> Endpoint:
        ep = self.ctx.store.get_endpoint(endpoint)
        if ep is None:
            raise errors.validation(f"The endpoint {endpoint} does not exist.")
        plan = next((p for p in ep.deployment.plans if p.name == variant), None)
        if plan is None:
            raise errors.validation(f"The variant {variant} does not exist in endpoint {ep.name}.")
        if plan.serverless is not None:
            raise errors.validation(
                f"Variant {variant} of endpoint {ep.name} is serverless: it has no {DIMENSION} to scale."
            )
        return ep

    # --- scalable targets --------------------------------------------------------------------

    def register(self, params: Params) -> Params:
        endpoint, variant = self._variant(params)
        ep = self._endpoint(endpoint, variant)
        old = self.records.target(endpoint, variant)
        low = params.get("MinCapacity", old.min_capacity if old else None)
        high = params.get("MaxCapacity", old.max_capacity if old else None)
        if low is None or high is None:
            raise errors.validation("MinCapacity and MaxCapacity are required to register a new scalable target.")
        if low > high:
            raise errors.validation("Minimum capacity cannot be greater than maximum capacity.")
        if low == 0 and not is_async(ep):
            raise errors.validation(
                f"MinCapacity 0 is allowed only for asynchronous endpoints (AsyncInferenceConfig); endpoint "
                f"{ep.name} is real-time. Use a MinCapacity of at least 1."
            )
        target = ScalableTarget(
            endpoint=ep.name, variant=variant, resource_id=_resource_id(ep.name, variant),
            arn=old.arn if old else self._arn("application-autoscaling", f"scalable-target/{uuid.uuid4().hex}"),
            min_capacity=low, max_capacity=high, creation_time=old.creation_time if old else self.ctx.clock(),
            suspended={**(old.suspended if old else {}), **params.get("SuspendedState", {})},
        )
        self.records.put_target(target)
        return {"ScalableTargetARN": target.arn}

    def describe_targets(self, params: Params) -> Params:
        ids = {i.lower() for i in params.get("ResourceIds", [])}
        targets = [
            t for t in self.records.targets()
            if params["ServiceNamespace"] == NAMESPACE and params.get("ScalableDimension", DIMENSION) == DIMENSION
            and (not ids or t.resource_id.lower() in ids)
        ]
        page, token = self._page(targets, params, lambda t: {
            **self._names(t.resource_id), "MinCapacity": t.min_capacity, "MaxCapacity": t.max_capacity,
            "RoleARN": self._role_arn(), "CreationTime": t.creation_time, "SuspendedState": t.suspended,
            "ScalableTargetARN": t.arn,
        })
        return {"ScalableTargets": page, **({"NextToken": token} if token else {})}

    def deregister(self, params: Params) -> Params:
        target = self._target(params)
        self.records.delete_target(target.endpoint, target.variant)
        return {}

    # --- scaling policies --------------------------------------------------------------------

    def put_policy(self, params: Params) -> Params:
        target = self._target(params)
        policy_type = params.get("PolicyType", "StepScaling")  # Application Auto Scaling's default
        if policy_type == "StepScaling":
            raise errors.validation(
                "dockyard does not support StepScaling policies: CloudWatch alarms drive them, and dockyard has no "
                "CloudWatch. Use TargetTrackingScaling (to scale an asynchronous endpoint from zero, track "
                "ApproximateBacklogSizePerInstance)."
            )
        if policy_type != "TargetTrackingScaling":
            raise errors.validation(f"Policy type {policy_type} is not supported for {DIMENSION}.")
        config = params.get("TargetTrackingScalingPolicyConfiguration")
        if config is None:
            raise errors.validation(
                "TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy."
            )
        ep = self._endpoint(target.endpoint, target.variant)
        TargetTracking.parse(config, ep.name, target.variant, is_async(ep))
        old = self.records.policy(target.endpoint, target.variant, params["PolicyName"])
        if old is not None:
            policy_id, alarms, created = old.arn, old.alarms, old.creation_time
        else:
            policy_id = self._arn("autoscaling", (
                f"scalingPolicy:{uuid.uuid4()}:resource/{NAMESPACE}/{target.resource_id}:policyName/{params['PolicyName']}"
            ))
            # Named as AWS names the alarms it makes; dockyard keeps their rules itself (no CloudWatch).
            alarms = [
                {"AlarmName": name, "AlarmARN": self._arn("cloudwatch", f"alarm:{name}")}
                for name in (f"TargetTracking-{target.resource_id}-Alarm{side}-{uuid.uuid4()}" for side in ("High", "Low"))
            ]
            created = self.ctx.clock()
        self.records.put_policy(ScalingPolicy(
            endpoint=target.endpoint, variant=target.variant, name=params["PolicyName"], arn=policy_id,
            policy_type=policy_type, configuration=config, alarms=alarms, creation_time=created,
        ))
        return {"PolicyARN": policy_id, "Alarms": alarms}

    def describe_policies(self, params: Params) -> Params:
        names = set(params.get("PolicyNames", []))
        resource = params.get("ResourceId")
        key = parse_resource_id(resource) if resource else None
        policies = [
            p for p in self.records.policies()
            if params["ServiceNamespace"] == NAMESPACE and params.get("ScalableDimension", DIMENSION) == DIMENSION
            and (not names or p.name in names)
            and (key is None or (p.endpoint.lower(), p.variant) == (key[0].lower(), key[1]))
        ]
        page, token = self._page(policies, params, lambda p: {
            "PolicyARN": p.arn, "PolicyName": p.name, **self._names(_resource_id(p.endpoint, p.variant)),
            "PolicyType": p.policy_type, "TargetTrackingScalingPolicyConfiguration": p.configuration,
            "Alarms": p.alarms, "CreationTime": p.creation_time,
        })
        return {"ScalingPolicies": page, **({"NextToken": token} if token else {})}

    def delete_policy(self, params: Params) -> Params:
        endpoint, variant = self._variant(params)
        if self.records.policy(endpoint, variant, params["PolicyName"]) is None:
            raise errors.object_not_found(
                f"No scaling policy found for service namespace: {NAMESPACE}, resource ID: {params['ResourceId']}, "
                f"scalable dimension: {DIMENSION}, policy name: {params['PolicyName']}"
            )
        self.records.delete_policy(endpoint, variant, params["PolicyName"])
        return {}

    # --- scaling activities ------------------------------------------------------------------

    def describe_activities(self, params: Params) -> Params:
        resource = params.get("ResourceId")
        key = parse_resource_id(resource) if resource else None
        activities = [
            a for a in self.records.activities()
            if params["ServiceNamespace"] == NAMESPACE and params.get("ScalableDimension", DIMENSION) == DIMENSION
            and (key is None or (a.endpoint.lower(), a.variant) == (key[0].lower(), key[1]))
        ]
        page, token = self._page(activities, params, lambda a: {
            "ActivityId": a.id, **self._names(a.resource_id), "Description": a.description, "Cause": a.cause,
            "StartTime": a.start_time, **({"EndTime": a.end_time} if a.end_time is not None else {}),
            "StatusCode": a.status_code, "StatusMessage": a.status_message,
        }, created=lambda a: a.start_time)
        return {"ScalingActivities": page, **({"NextToken": token} if token else {})}

    @staticmethod
    def _names(resource_id: str) -> Params:
        return {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id, "ScalableDimension": DIMENSION}

    @staticmethod
    def _page(items: list[Any], params: Params, summary: Any, created: Any = None) -> tuple[list[Params], str | None]:
        """One page, newest first (as DescribeScalingActivities lists them)."""
        try:
            return listing.paginate(
                items, {"MaxResults": DEFAULT_MAX_RESULTS, **params}, summary,
                sort_keys={"CreationTime": created or (lambda x: x.creation_time)}, filters={},
            )
        except errors.AwsError as exc:  # the token: this service has its own code for it
            raise errors.AwsError("InvalidNextTokenException", exc.message) from None


def _resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"

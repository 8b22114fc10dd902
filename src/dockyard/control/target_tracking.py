"""Target tracking: which metrics a policy may follow, and the instance count a policy asks for.

For a SageMaker variant, AWS's target tracking makes two CloudWatch alarms over one-minute
datapoints: a high one (3 of 3 datapoints above the target: scale out) and a low one (15 of 15
below 90 % of the target: scale in), and sets the count to ``ceil(capacity × metric / target)``.
dockyard has no CloudWatch; it keeps the same rules over its own datapoints, one per
``autoscaling_period`` (``control/autoscaling.py`` takes them). So it scales out after three
periods of overload and in only after fifteen quiet ones.

Metrics dockyard keeps, and so the only ones a policy may name (anything else is refused with a
ValidationException naming these):

- predefined ``SageMakerVariantInvocationsPerInstance``, or the customized
  ``AWS/SageMaker`` ``InvocationsPerInstance`` (dimensions ``EndpointName`` and ``VariantName``):
  InvokeEndpoint requests to the variant per minute per instance, counted by the gateway;
- customized ``AWS/SageMaker`` ``ApproximateBacklogSizePerInstance`` (dimension ``EndpointName``;
  asynchronous endpoints only): the async backlog per instance.

At zero instances (an asynchronous endpoint at MinCapacity 0) a per-instance metric is the whole
backlog, as if one instance had it, so a backlog asks for capacity: that is what AWS's
``HasBacklogWithoutCapacity`` step policy does for this case.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dockyard import errors

NAMESPACE = "AWS/SageMaker"
PREDEFINED = "SageMakerVariantInvocationsPerInstance"
INVOCATIONS = "InvocationsPerInstance"
BACKLOG = "ApproximateBacklogSizePerInstance"
# Customized metrics dockyard keeps → the dimensions that name the variant's series.
CUSTOMIZED = {INVOCATIONS: ("EndpointName", "VariantName"), BACKLOG: ("EndpointName",)}
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_THRESHOLD = 0.9  # of the target: the low alarm's threshold
DEFAULT_COOLDOWN = 300  # seconds: SageMaker variants' default ScaleIn/ScaleOutCooldown
_EPSILON = 1e-9  # so that 600.0000001 / 300 does not ask for a third instance


@dataclass(frozen=True)
class TargetTracking:
    """A TargetTrackingScalingPolicyConfiguration, checked and typed."""

    metric: str  # INVOCATIONS or BACKLOG
    target: float
    scale_out_cooldown: float
    scale_in_cooldown: float
    disable_scale_in: bool

    @classmethod
    def parse(cls, config: dict[str, Any], endpoint: str, variant: str, asynchronous: bool) -> TargetTracking:
        """The policy of ``config`` for ``variant`` of ``endpoint``; ValidationException naming
        what dockyard cannot track."""
        predefined = config.get("PredefinedMetricSpecification")
        customized = config.get("CustomizedMetricSpecification")
        if (predefined is None) == (customized is None):
            raise errors.validation(
                "A TargetTrackingScaling policy needs exactly one of PredefinedMetricSpecification and "
                "CustomizedMetricSpecification."
            )
        if predefined is not None:
            if predefined["PredefinedMetricType"] != PREDEFINED:
                raise errors.validation(
                    f"Unsupported PredefinedMetricType {predefined['PredefinedMetricType']} for scalable dimension "
                    f"sagemaker:variant:DesiredInstanceCount; dockyard tracks {PREDEFINED}."
                )
            metric = INVOCATIONS
        else:
            metric = _customized(config["CustomizedMetricSpecification"], endpoint, variant)
        if metric == BACKLOG and not asynchronous:
            raise errors.validation(
                f"Metric {NAMESPACE}/{BACKLOG} exists only for asynchronous endpoints; endpoint {endpoint} has no "
                "AsyncInferenceConfig."
            )
        target = float(config["TargetValue"])
        if not target > 0:
            raise errors.validation(f"TargetValue must be greater than 0, not {target}.")
        return cls(
            metric=metric,
            target=target,
            scale_out_cooldown=float(config.get("ScaleOutCooldown", DEFAULT_COOLDOWN)),
            scale_in_cooldown=float(config.get("ScaleInCooldown", DEFAULT_COOLDOWN)),
            disable_scale_in=bool(config.get("DisableScaleIn", False)),
        )

    def proposal(self, current: int, datapoints: Iterable[float]) -> int:
        """The count this policy asks for, given the variant's datapoints of its metric (oldest
        first, all taken at ``current`` instances): more once the last SCALE_OUT_DATAPOINTS are
        all above the target (from the newest), fewer once the last SCALE_IN_DATAPOINTS are all
        below 90 % of it (from the highest of them: scale in conservatively), else ``current``."""
        # Per-instance values were taken over max(current, 1) instances: this is the total.
        base = max(current, 1)
        points = list(datapoints)
        recent = points[-SCALE_OUT_DATAPOINTS:]
        if len(recent) == SCALE_OUT_DATAPOINTS and all(v > self.target for v in recent):
            return max(current, _ceil(base * recent[-1] / self.target))
        window = points[-SCALE_IN_DATAPOINTS:]
        if (not self.disable_scale_in and len(window) == SCALE_IN_DATAPOINTS
                and all(v < SCALE_IN_THRESHOLD * self.target for v in window)):
            return min(current, _ceil(base * max(window) / self.target))
        return current


def _ceil(value: float) -> int:
    return math.ceil(value - _EPSILON)


def _customized(spec: dict[str, Any], endpoint: str, variant: str) -> str:
    """The metric a CustomizedMetricSpecification names, if dockyard keeps it for this variant."""
    if "Metrics" in spec:
        raise errors.validation("dockyard does not support metric math (Metrics) in CustomizedMetricSpecification; "
                                "name one MetricName and Namespace.")
    name, namespace = spec.get("MetricName"), spec.get("Namespace")
    if namespace != NAMESPACE or name not in CUSTOMIZED:
        kept = " and ".join(f"{NAMESPACE}/{m} (dimensions {', '.join(d)})" for m, d in CUSTOMIZED.items())
        raise errors.validation(f"dockyard has no metric {namespace}/{name}; it keeps {kept}.")
    wanted = {"EndpointName": endpoint, "VariantName": variant}
    dimensions = {d["Name"]: d["Value"] for d in spec.get("Dimensions", [])}
    for key in CUSTOMIZED[name]:
        given = dimensions.pop(key, None)
        same = given is not None and (given.lower() == endpoint.lower() if key == "EndpointName" else given == variant)
        if not same:
            raise errors.validation(
                f"Metric {NAMESPACE}/{name} of this scalable target needs dimension {key}={wanted[key]}, not {given}."
            )
    if dimensions:
        raise errors.validation(f"Metric {NAMESPACE}/{name} has no dimension {', '.join(sorted(dimensions))}.")
    return str(name)

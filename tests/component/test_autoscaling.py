"""Autoscaling on a FakeRuntime: target tracking's arithmetic (scale out after three datapoints
above the target, in after fifteen below 90 % of it), cooldowns, Min/MaxCapacity and
SuspendedState; then the whole loop in-process — invocations drive the count up through the
reconciler, DescribeEndpoint and the activities show it, and quiet brings it back down."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

import pytest
from component_harness import AwsError, Dockyard

from dockyard.control.autoscaling import Policy, Tracked, decide
from dockyard.control.scaling_store import ScalableTarget
from dockyard.control.target_tracking import BACKLOG, INVOCATIONS, TargetTracking

RESOURCE = "endpoint/ep/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def tracking(target: float = 100.0, out: float = 0.0, in_: float = 0.0, disable_in: bool = False,
             metric: str = INVOCATIONS) -> TargetTracking:
    return TargetTracking(metric, target, out, in_, disable_in)


def policy(name: str = "p", **kw: Any) -> Policy:
    return Policy(name, tracking(**kw), (f"{name}-AlarmHigh", f"{name}-AlarmLow"))


def target(low: int = 1, high: int = 10, **suspended: bool) -> ScalableTarget:
    return ScalableTarget("ep", "AllTraffic", RESOURCE, "arn", low, high, 0.0, dict(suspended))


def tracked(*values: float, last_out: float = -math.inf, last_change: float = -math.inf) -> Tracked:
    t = Tracked(last_scale_out=last_out, last_change=last_change)
    t.datapoints[INVOCATIONS] = deque(values, maxlen=15)
    return t


# --- arithmetic ------------------------------------------------------------------------------

def test_scale_out_needs_three_datapoints_above_the_target_and_follows_the_newest() -> None:
    t = tracking(100.0)
    assert t.proposal(2, [250.0, 250.0]) == 2  # two datapoints: not yet
    assert t.proposal(2, [250.0, 90.0, 250.0]) == 2  # one dipped below: not yet
    assert t.proposal(2, [150.0, 200.0, 250.0]) == 5  # ceil(2 × 250 / 100)
    assert t.proposal(2, [101.0, 101.0, 101.0]) == 3
    assert t.proposal(3, [200.0, 200.0, 200.0]) == 6  # exactly proportional: no extra instance


def test_scale_in_needs_fifteen_datapoints_below_ninety_percent_and_follows_the_highest() -> None:
    t = tracking(100.0)
    assert t.proposal(4, [10.0] * 14) == 4
    assert t.proposal(4, [10.0] * 14 + [95.0]) == 4  # 95 is not below 90 % of the target
    assert t.proposal(4, [10.0] * 13 + [60.0, 10.0]) == 3  # ceil(4 × 60 / 100), not from the mean
    assert t.proposal(4, [0.0] * 15) == 0  # no traffic at all: as few as Min allows
    assert tracking(100.0, disable_in=True).proposal(4, [0.0] * 15) == 4


def test_a_backlog_at_zero_instances_asks_for_capacity() -> None:
    # Per-instance values at zero instances are the whole backlog (as over one instance).
    t = tracking(2.0, metric=BACKLOG)
    assert t.proposal(0, [5.0, 5.0, 5.0]) == 3
    assert t.proposal(0, [0.0, 0.0, 0.0]) == 0


def test_decide_applies_min_max_cooldowns_and_suspension() -> None:
    hot = (500.0, 500.0, 500.0)
    out = decide(target(high=3), (policy(),), 1, tracked(*hot), now=100.0)
    assert out is not None and (out.desired, out.scale_out) == (3, True)  # capped at MaxCapacity
    assert out.cause == "monitor alarm p-AlarmHigh in state ALARM triggered policy p"
    # Within ScaleOutCooldown of the last scale-out: nothing; after it: scale out.
    assert decide(target(), (policy(out=60.0),), 1, tracked(*hot, last_out=50.0), now=100.0) is None
    assert decide(target(), (policy(out=60.0),), 1, tracked(*hot, last_out=30.0), now=100.0) is not None
    assert decide(target(DynamicScalingOutSuspended=True), (policy(),), 1, tracked(*hot), now=100.0) is None

    quiet = [0.0] * 15
    down = decide(target(low=2), (policy(),), 4, tracked(*quiet), now=100.0)
    assert down is not None and (down.desired, down.scale_out) == (2, False)  # floored at MinCapacity
    assert down.cause == "monitor alarm p-AlarmLow in state ALARM triggered policy p"
    # ScaleInCooldown counts from the last change either way.
    assert decide(target(), (policy(in_=60.0),), 4, tracked(*quiet, last_change=50.0), now=100.0) is None
    assert decide(target(), (policy(in_=60.0),), 4, tracked(*quiet, last_change=30.0), now=100.0) is not None
    assert decide(target(DynamicScalingInSuspended=True), (policy(),), 4, tracked(*quiet), now=100.0) is None
    assert decide(target(low=4), (policy(),), 4, tracked(*quiet), now=100.0) is None


def test_several_policies_largest_scale_out_wins_and_scale_in_needs_all() -> None:
    points = tracked(300.0, 300.0, 300.0)
    change = decide(target(), (policy("a", target=100.0), policy("b", target=50.0)), 1, points, now=1.0)
    assert change is not None and change.desired == 6 and "policy b" in change.cause
    quiet = tracked(*[50.0] * 15)
    # "a" (target 100) wants fewer, "b" (target 50) does not: no scale-in.
    assert decide(target(), (policy("a", target=100.0), policy("b", target=50.0)), 4, quiet, now=1.0) is None
    # A policy with DisableScaleIn has no say in scaling in.
    change = decide(target(), (policy("a", target=100.0), policy("b", target=50.0, disable_in=True)), 4, quiet, now=1.0)
    assert change is not None and change.desired == 2


# --- the whole loop, in-process ----------------------------------------------------------------

@pytest.fixture
async def dockyard(aiohttp_client: Any, tmp_path: Any, fake: Any) -> Any:
    server = Dockyard(aiohttp_client, tmp_path / "state", fake)
    server.overrides["autoscaling_period"] = 0.05  # a datapoint every 50 ms
    await server.start()
    yield server
    await server.stop()


async def register(dockyard: Dockyard, low: int = 1, high: int = 3, resource: str = RESOURCE) -> dict[str, Any]:
    return await dockyard.scaling("RegisterScalableTarget", ServiceNamespace="sagemaker", ResourceId=resource,
                                  ScalableDimension=DIMENSION, MinCapacity=low, MaxCapacity=high)


async def put_policy(dockyard: Dockyard, **config: Any) -> dict[str, Any]:
    return await dockyard.scaling(
        "PutScalingPolicy", PolicyName="invocations", ServiceNamespace="sagemaker", ResourceId=RESOURCE,
        ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 60.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            **config,
        })


async def test_invocations_scale_the_variant_out_and_quiet_scales_it_back_in(dockyard: Dockyard) -> None:
    # Instances take a tenth of a second to start, so the endpoint is seen Updating meanwhile.
    await dockyard.deploy("ep", env={"FAKE_START_DELAY": "0.1"})
    await register(dockyard)
    put = await put_policy(dockyard)
    high, low = (a["AlarmName"] for a in put["Alarms"])
    assert high.startswith(f"TargetTracking-{RESOURCE}-AlarmHigh-") and low.startswith(f"TargetTracking-{RESOURCE}-AlarmLow-")
    statuses: set[str] = set()
    moving: list[tuple[int, int]] = []

    async def load() -> None:
        while True:
            assert (await dockyard.invoke("ep")).status == 200
            await asyncio.sleep(0.005)  # ~200 a second: thousands a minute, far above 60

    loader = asyncio.create_task(load())
    try:
        async def scaled_out() -> bool:
            ep = await dockyard.describe("ep")
            statuses.add(ep["EndpointStatus"])
            variant = ep["ProductionVariants"][0]
            if ep["EndpointStatus"] == "Updating":  # the new count is desired, the old one serves
                moving.append((variant["DesiredInstanceCount"], variant["CurrentInstanceCount"]))
            return ep["EndpointStatus"] == "InService" and variant["CurrentInstanceCount"] == 3

        await asyncio.wait_for(_until(scaled_out), 10)
    finally:
        loader.cancel()
    assert "Updating" in statuses
    assert all(desired > current for desired, current in moving), moving
    assert len([c for c in dockyard.fake.containers("ep")]) == 3
    # Quiet: fifteen datapoints below 90 % of the target, then back to MinCapacity.
    async def scaled_in() -> bool:
        ep = await dockyard.describe("ep")
        return ep["EndpointStatus"] == "InService" and ep["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    await asyncio.wait_for(_until(scaled_in), 10)
    await dockyard.until(lambda: len(dockyard.fake.containers("ep")) == 1)
    activities = (await dockyard.scaling("DescribeScalingActivities", ServiceNamespace="sagemaker",
                                         ResourceId=RESOURCE))["ScalingActivities"]

    async def settled() -> bool:
        nonlocal activities
        activities = (await dockyard.scaling("DescribeScalingActivities", ServiceNamespace="sagemaker",
                                             ResourceId=RESOURCE))["ScalingActivities"]
        return all(a["StatusCode"] == "Successful" for a in activities)

    await asyncio.wait_for(_until(settled), 10)
    descriptions = [a["Description"] for a in reversed(activities)]  # oldest first
    assert descriptions[0].startswith("Setting desired instance count to ")
    assert descriptions[-1] == "Setting desired instance count to 1."
    assert "AlarmHigh" in activities[-1]["Cause"] and "AlarmLow" in activities[0]["Cause"]
    assert activities[0]["StatusMessage"] == ("Successfully set desired instance count to 1. Change successfully "
                                              "fulfilled by sagemaker.")


async def test_registering_a_minimum_above_the_count_scales_out_at_once(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    await register(dockyard, low=2, high=4)

    async def two() -> bool:
        ep = await dockyard.describe("ep")
        return ep["EndpointStatus"] == "InService" and ep["ProductionVariants"][0]["CurrentInstanceCount"] == 2

    await asyncio.wait_for(_until(two), 10)
    activity = (await dockyard.scaling("DescribeScalingActivities", ServiceNamespace="sagemaker"))["ScalingActivities"][0]
    assert (activity["Description"], activity["Cause"]) == ("Setting desired instance count to 2.",
                                                            "minimum capacity was set to 2")


async def test_deleting_the_endpoint_deregisters_its_targets(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    await register(dockyard)
    await put_policy(dockyard)
    await dockyard.call("DeleteEndpoint", EndpointName="ep")
    await dockyard.wait_gone("ep")
    described = await dockyard.scaling("DescribeScalableTargets", ServiceNamespace="sagemaker")
    assert described["ScalableTargets"] == []
    policies = await dockyard.scaling("DescribeScalingPolicies", ServiceNamespace="sagemaker")
    assert policies["ScalingPolicies"] == []
    with pytest.raises(AwsError) as err:
        await dockyard.scaling("DeregisterScalableTarget", ServiceNamespace="sagemaker", ResourceId=RESOURCE,
                               ScalableDimension=DIMENSION)
    assert (err.value.code, err.value.message) == (
        "ObjectNotFoundException",
        f"No scalable target registered for service namespace: sagemaker, resource ID: {RESOURCE}, scalable "
        f"dimension: {DIMENSION}")


async def _until(condition: Any) -> None:
    while not await condition():
        await asyncio.sleep(0.01)


async def test_targets_and_policies_survive_a_restart(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    registered = await register(dockyard, low=1, high=5)
    put = await put_policy(dockyard, TargetValue=123.0)
    await dockyard.restart()
    target = (await dockyard.scaling("DescribeScalableTargets", ServiceNamespace="sagemaker"))["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"], t["ScalableTargetARN"]) for t in target] == [
        (RESOURCE, 1, 5, registered["ScalableTargetARN"])]
    policies = (await dockyard.scaling("DescribeScalingPolicies", ServiceNamespace="sagemaker"))["ScalingPolicies"]
    assert [(p["PolicyARN"], p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]) for p in policies] == [
        (put["PolicyARN"], 123.0)]


async def test_update_endpoint_may_not_change_a_scaled_variants_instance_type(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    await register(dockyard)
    await dockyard.create_config("bigger", [{"VariantName": "AllTraffic", "ModelName": "ep",
                                             "InstanceType": "ml.c5.xlarge"}])
    with pytest.raises(AwsError) as err:
        await dockyard.call("UpdateEndpoint", EndpointName="ep", EndpointConfigName="bigger")
    assert err.value.code == "ValidationException"
    assert err.value.message == (
        'Cannot update endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep": variant AllTraffic is '
        "registered for autoscaling, and the update would change its instance type to ml.c5.xlarge. Deregister "
        f"the scalable target {RESOURCE} (DeregisterScalableTarget) first.")
    # Another model on the same instance type is allowed, as on SageMaker.
    await dockyard.create_model("other")
    await dockyard.create_config("same", [{"VariantName": "AllTraffic", "ModelName": "other"}])
    await dockyard.call("UpdateEndpoint", EndpointName="ep", EndpointConfigName="same")
    await dockyard.wait_status("ep", "InService")


async def test_listing_errors_are_the_services_own(dockyard: Dockyard) -> None:
    with pytest.raises(AwsError) as err:
        await dockyard.scaling("DescribeScalingActivities", ServiceNamespace="sagemaker", NextToken="garbage")
    assert err.value.code == "InvalidNextTokenException"
    with pytest.raises(AwsError) as err:
        await dockyard.scaling("ListTagsForResource", ResourceARN="arn:aws:application-autoscaling:x")
    assert (err.value.code, err.value.message) == ("UnknownOperationException",
                                                   "Operation ListTagsForResource is not supported by dockyard.")
    with pytest.raises(AwsError) as err:
        await dockyard.scaling("Nope")
    assert err.value.message == "Application Auto Scaling has no operation Nope."


async def test_a_count_set_by_hand_outside_the_bounds_is_moved_back_inside(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    await register(dockyard, low=1, high=2)
    await dockyard.call("UpdateEndpointWeightsAndCapacities", EndpointName="ep", DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 3}])

    async def back_to_two() -> bool:
        activities = (await dockyard.scaling("DescribeScalingActivities", ServiceNamespace="sagemaker"))[
            "ScalingActivities"]
        ep = await dockyard.describe("ep")
        return (bool(activities) and activities[0]["StatusCode"] == "Successful"
                and ep["ProductionVariants"][0]["CurrentInstanceCount"] == 2)

    await asyncio.wait_for(_until(back_to_two), 10)
    activity = (await dockyard.scaling("DescribeScalingActivities", ServiceNamespace="sagemaker"))["ScalingActivities"][0]
    assert (activity["Description"], activity["Cause"]) == ("Setting desired instance count to 2.",
                                                            "maximum capacity was set to 2")
    await dockyard.until(lambda: len(dockyard.fake.containers("ep")) == 2)

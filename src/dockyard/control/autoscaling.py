"""The scaler: turns scaling policies into changes of a variant's desired instance count.

Every ``period`` seconds (``autoscaling_period``) it takes one datapoint per scalable target of
each metric its policies track — InvokeEndpoint requests per minute per instance (from the
gateway's in-memory counts, normalised from the period to a minute) and the asynchronous backlog
per instance — asks each policy for the count it wants (``target_tracking.py``), then applies
Min/MaxCapacity, the cooldowns and the SuspendedState. A new count is set exactly as
UpdateEndpointWeightsAndCapacities sets it: the endpoint goes ``Updating``, the reconciler starts
or stops the difference on whatever runtime it drives, and the endpoint is ``InService`` again.
While an endpoint is not InService (an update of the user's, or the scaler's own), its variants
are left alone and their datapoints start afresh, as the capacity they were taken at is moving.

Several policies on one variant: the largest scale-out wins; a scale-in happens only when every
policy asks for one (as Application Auto Scaling does). No scale-out within ScaleOutCooldown of
the last scale-out; no scale-in within ScaleInCooldown of the last change either way.

Each change is a scaling activity: InProgress, then Successful (or Failed with the endpoint's
FailureReason) once the endpoint has settled. Datapoints and cooldown clocks live in memory: a
restarted server starts them afresh. Nothing here runs on the invocation path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dockyard.control.context import ControlContext
from dockyard.control.endpoints import EndpointOps
from dockyard.control.scalable_targets import is_async
from dockyard.control.scaling_store import ScalableTarget, ScalingActivity, ScalingStore
from dockyard.control.status import EndpointStatus
from dockyard.control.store import Endpoint
from dockyard.control.target_tracking import BACKLOG, INVOCATIONS, SCALE_IN_DATAPOINTS, TargetTracking
from dockyard.errors import AwsError

log = logging.getLogger(__name__)

# (endpoint, variant) → InvokeEndpoint requests counted so far (the gateway's, in memory).
Invocations = Callable[[str, str], int]
# endpoint → asynchronous requests queued or running (None: not an asynchronous endpoint).
Backlog = Callable[[str], "float | None"]


@dataclass(frozen=True)
class Policy:
    name: str
    tracking: TargetTracking
    alarms: tuple[str, str]  # the names of its high and low "alarms", for the activity's Cause


@dataclass(frozen=True)
class Target:
    """A scalable target as one pass sees it: its record, its endpoint and its policies."""

    record: ScalableTarget
    endpoint: Endpoint | None
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class Change:
    target: ScalableTarget
    current: int
    desired: int
    cause: str
    scale_out: bool


@dataclass
class Tracked:
    """What the scaler remembers of one variant between passes."""

    invocations: int | None = None  # the count at the last datapoint
    taken_at: float = 0.0
    datapoints: dict[str, deque[float]] = field(default_factory=dict)
    last_scale_out: float = -math.inf
    last_change: float = -math.inf

    def restart(self) -> None:
        self.datapoints.clear()


class Autoscaler:
    def __init__(self, ctx: ControlContext, endpoints: EndpointOps, invocations: Invocations, backlog: Backlog,
                 period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.endpoints, self.records = ctx, endpoints, ScalingStore(ctx.store)
        self._invocations, self._backlog = invocations, backlog
        self.period, self._clock = period, clock
        self._tracked: dict[tuple[str, str], Tracked] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="autoscaler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.evaluate()
            except Exception:  # a bug of ours: logged, and the next period tries again
                log.exception("autoscaling pass failed")

    async def evaluate(self) -> list[Change]:
        """One pass: settle finished activities, take datapoints, apply the changes they ask for."""
        targets = await self.ctx.store.run(self._view)
        now = self._clock()
        changes = [c for t in targets if (c := self._decide(t, now)) is not None]
        self._tracked = {k: v for k, v in self._tracked.items()
                         if k in {(t.record.endpoint.lower(), t.record.variant) for t in targets}}
        if changes:
            applied = await self.ctx.store.run(self._apply, changes)
            for change in applied:
                tracked = self._tracked[(change.target.endpoint.lower(), change.target.variant)]
                tracked.restart()
                tracked.last_change = now
                if change.scale_out:
                    tracked.last_scale_out = now
        return changes

    # --- on the store's thread ---------------------------------------------------------------

    def _view(self) -> list[Target]:
        self._settle()
        policies: dict[tuple[str, str], list[Policy]] = {}
        endpoints: dict[str, Endpoint | None] = {}
        targets = self.records.targets()
        for t in targets:
            if t.endpoint.lower() not in endpoints:
                endpoints[t.endpoint.lower()] = self.ctx.store.get_endpoint(t.endpoint)
        for p in self.records.policies():
            ep = endpoints.get(p.endpoint.lower())
            if ep is None:
                continue
            try:
                tracking = TargetTracking.parse(p.configuration, ep.name, p.variant, is_async(ep))
            except AwsError as exc:  # the endpoint changed under the policy (UpdateEndpoint)
                log.warning("scaling policy %s of %s/%s no longer applies: %s", p.name, ep.name, p.variant, exc.message)
                continue
            alarms = (p.alarms[0]["AlarmName"], p.alarms[1]["AlarmName"])
            policies.setdefault((p.endpoint.lower(), p.variant), []).append(Policy(p.name, tracking, alarms))
        return [Target(t, endpoints[t.endpoint.lower()], tuple(policies.get((t.endpoint.lower(), t.variant), ())))
                for t in targets]

    def _settle(self) -> None:
        """Finish the activities whose endpoint has settled: Successful when the variant has the
        count the activity set, else Failed with the reason."""
        for activity in self.records.activities(in_progress_only=True):
            ep = self.ctx.store.get_endpoint(activity.endpoint)
            if ep is not None and ep.status == EndpointStatus.UPDATING:
                continue
            count = next((p.instance_count for p in ep.deployment.plans if p.name == activity.variant), None) if ep else None
            if count == activity.desired:
                code, message = "Successful", (f"Successfully set desired instance count to {count}. Change "
                                               "successfully fulfilled by sagemaker.")
            else:
                reason = ep.failure_reason if ep is not None else f"Endpoint {activity.endpoint} was deleted."
                code, message = "Failed", f"Failed to set desired instance count to {activity.desired}. Reason: {reason}"
            self.records.finish_activity(activity.id, code, message, self.ctx.clock())

    def _apply(self, changes: list[Change]) -> list[Change]:
        """Set each change's count if its endpoint is still as the pass saw it; the changes made."""
        applied = []
        for change in changes:
            t = change.target
            ep = self.ctx.store.get_endpoint(t.endpoint)
            plan = next((p for p in ep.deployment.plans if p.name == t.variant), None) if ep else None
            if ep is None or plan is None or ep.status != EndpointStatus.IN_SERVICE or plan.instance_count != change.current:
                continue
            activity = ScalingActivity(
                id=str(uuid.uuid4()), endpoint=ep.name, variant=t.variant, resource_id=t.resource_id,
                description=f"Setting desired instance count to {change.desired}.", cause=change.cause,
                start_time=self.ctx.clock(), end_time=None, status_code="InProgress",
                status_message="", desired=change.desired,
            )
            try:
                self.endpoints.update_weights_and_capacities({
                    "EndpointName": ep.name,
                    "DesiredWeightsAndCapacities": [{"VariantName": t.variant, "DesiredInstanceCount": change.desired}],
                })
            except AwsError as exc:  # e.g. DOCKYARD_MAX_CONTAINERS reached
                activity = _failed(activity, f"Failed to set desired instance count to {change.desired}. "
                                             f"Reason: {exc.message}", self.ctx.clock())
            else:
                applied.append(change)
            log.info("autoscaling %s: %s %s", t.resource_id, activity.description, activity.cause)
            self.records.add_activity(activity)
        return applied

    # --- on the event loop -------------------------------------------------------------------

    def _decide(self, target: Target, now: float) -> Change | None:
        record, ep = target.record, target.endpoint
        tracked = self._tracked.setdefault((record.endpoint.lower(), record.variant), Tracked())
        plan = next((p for p in ep.deployment.plans if p.name == record.variant), None) if ep else None
        if ep is None or plan is None:
            return None
        current = plan.instance_count
        self._sample(tracked, target, current, now, ep.status == EndpointStatus.IN_SERVICE)
        if ep.status != EndpointStatus.IN_SERVICE:
            return None
        if not record.min_capacity <= current <= record.max_capacity:
            bound, word = ((record.min_capacity, "minimum") if current < record.min_capacity
                           else (record.max_capacity, "maximum"))
            return Change(record, current, bound, f"{word} capacity was set to {bound}", bound > current)
        return decide(record, target.policies, current, tracked, now)

    def _sample(self, tracked: Tracked, target: Target, current: int, now: float, in_service: bool) -> None:
        """Add one datapoint of each metric the target's policies track (per minute, per instance)."""
        record = target.record
        count = self._invocations(record.endpoint, record.variant)
        previous, elapsed = tracked.invocations, now - tracked.taken_at
        tracked.invocations, tracked.taken_at = count, now
        if not in_service:
            tracked.restart()
            return
        values: dict[str, float] = {}
        if previous is not None and elapsed > 0:
            # A count lower than before was reset (the endpoint's series were dropped).
            delta = count - previous if count >= previous else count
            values[INVOCATIONS] = delta * 60.0 / elapsed / max(current, 1)
        values[BACKLOG] = (self._backlog(record.endpoint) or 0.0) / max(current, 1)
        for metric in {p.tracking.metric for p in target.policies}:
            if metric in values:
                tracked.datapoints.setdefault(metric, deque(maxlen=SCALE_IN_DATAPOINTS)).append(values[metric])


def decide(record: ScalableTarget, policies: tuple[Policy, ...], current: int, tracked: Tracked,
           now: float) -> Change | None:
    """The change the policies ask for now, within Min/MaxCapacity, cooldowns and SuspendedState."""
    if not policies:
        return None
    asks = [(p.tracking.proposal(current, tracked.datapoints.get(p.tracking.metric, ())), p) for p in policies]
    out = [(n, p) for n, p in asks
           if n > current and now - tracked.last_scale_out >= p.tracking.scale_out_cooldown]
    if out and not record.suspended.get("DynamicScalingOutSuspended"):
        desired, policy = max(out, key=lambda a: a[0])
        desired = min(desired, record.max_capacity)
        if desired > current:
            return Change(record, current, desired, _cause(policy.alarms[0], policy.name), True)
        return None
    # Policies with DisableScaleIn have no say in scaling in; all the others must want it.
    ins = [(n, p) for n, p in asks if not p.tracking.disable_scale_in]
    if (ins and all(n < current for n, _ in ins) and not record.suspended.get("DynamicScalingInSuspended")
            and all(now - tracked.last_change >= p.tracking.scale_in_cooldown for _, p in ins)):
        desired, policy = max(ins, key=lambda a: a[0])
        desired = max(desired, record.min_capacity)
        if desired < current:
            return Change(record, current, desired, _cause(policy.alarms[1], policy.name), False)
    return None


def _cause(alarm: str, policy: str) -> str:
    return f"monitor alarm {alarm} in state ALARM triggered policy {policy}"


def _failed(activity: ScalingActivity, message: str, end: float) -> ScalingActivity:
    return replace(activity, status_code="Failed", status_message=message, end_time=end)

"""The reconciler: drives the runtime towards the desired state in the store.

One loop handles everything: a new endpoint (Creating → InService | Failed), an update
(Updating → InService, blue/green), a delete (Deleting → gone), a server restart (InService
endpoints with nothing running are brought back) and a crashed container (its instance is
replaced). It wakes when the control plane rings, when its own work finishes, and every
``health_interval`` seconds to look for dead containers.

After every change it publishes a new routing snapshot to the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from typing import Any, Coroutine

from dockyard.control.plans import VariantPlan, variant_plans
from dockyard.control.provision import Provisioner
from dockyard.control.store import Endpoint, Store
from dockyard.gateway.metrics import GatewayMetrics
from dockyard.gateway.proxy import Gateway
from dockyard.gateway.routing import ContainerRoute, EndpointRoute, InstanceRoute, VariantRoute
from dockyard.runtime.base import InstanceStartError, RunningInstance, Runtime

log = logging.getLogger(__name__)
MAX_FAILURE_REASON = 1024


@dataclass
class DeployedVariant:
    plan: VariantPlan
    instances: list[RunningInstance] = field(default_factory=list)


Deployment = dict[str, DeployedVariant]


class Reconciler:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        provisioner: Provisioner,
        gateway: Gateway,
        metrics: GatewayMetrics,
        health_interval: float,
    ) -> None:
        self._store, self._runtime, self._provisioner = store, runtime, provisioner
        self._gateway, self._metrics = gateway, metrics
        self._interval = health_interval
        self._wake = asyncio.Event()
        self._deployed: dict[str, Deployment] = {}
        self._work: dict[str, asyncio.Task[None]] = {}

    def poke(self) -> None:
        self._wake.set()

    def running(self, endpoint: str) -> list[RunningInstance]:
        return [i for v in self._deployed.get(endpoint.lower(), {}).values() for i in v.instances]

    async def run(self) -> None:
        await self._runtime.remove_orphans()
        while True:
            self._wake.clear()
            self._pass()
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.TimeoutError:
                pass

    def _pass(self) -> None:
        for ep in self._store.list_endpoints():
            key = ep.name.lower()
            task = self._work.get(key)
            if task is not None and not task.done():
                if ep.status == "Deleting" and task.get_name() != "Deleting":
                    task.cancel()  # a delete overrides whatever was in progress
                continue
            step = self._step(ep)
            if step is not None:
                task = asyncio.create_task(step, name=ep.status)
                task.add_done_callback(lambda t, key=key: self._finished(key, t))
                self._work[key] = task

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("reconciling endpoint %s failed", key, exc_info=task.exception())
        self.poke()

    def _step(self, ep: Endpoint) -> Coroutine[Any, Any, None] | None:
        """The work an endpoint needs now, or None when it is where it should be."""
        key = ep.name.lower()
        if ep.status == "Deleting":
            return self._delete(ep)
        if ep.status == "Creating":
            return self._create(ep)
        if ep.status == "Updating":
            return self._update(ep)
        if ep.status == "InService":
            if key not in self._deployed:
                return self._restore(ep)
            if self._dead_instances(key):
                return self._replace_dead(ep)
            return None
        if key in self._deployed:  # Failed: nothing may keep running
            return self._stop_all(ep, publish_status=ep.status)
        if key not in self._gateway.table:
            self._publish(ep.name, ep.status, {})
        return None

    # --- steps -------------------------------------------------------------------------------

    async def _create(self, ep: Endpoint) -> None:
        self._publish(ep.name, "Creating", {})
        try:
            deployment = await self._start(ep.name, variant_plans(ep.deployment), {})
        except InstanceStartError as exc:
            self._store.update_endpoint(ep.name, when_status="Creating", status="Failed",
                                        failure_reason=str(exc)[:MAX_FAILURE_REASON])
            self._publish(ep.name, "Failed", {})
            return
        self._deployed[ep.name.lower()] = deployment
        if self._store.update_endpoint(ep.name, when_status="Creating", status="InService"):
            self._publish(ep.name, "InService", deployment)

    async def _restore(self, ep: Endpoint) -> None:
        # After a restart: known InService, nothing running yet. Until the instances pass
        # /ping, invocations get 503, which boto3 retries with backoff.
        plans = variant_plans(ep.deployment)
        self._publish(ep.name, "InService", {p.name: DeployedVariant(p) for p in plans})
        try:
            deployment = await self._start(ep.name, plans, {})
        except InstanceStartError as exc:
            self._store.update_endpoint(ep.name, when_status="InService", status="Failed",
                                        failure_reason=f"Restarting the endpoint failed: {exc}"[:MAX_FAILURE_REASON])
            self._publish(ep.name, "Failed", {})
            return
        self._deployed[ep.name.lower()] = deployment
        self._publish(ep.name, "InService", deployment)

    async def _update(self, ep: Endpoint) -> None:
        assert ep.pending is not None
        key = ep.name.lower()
        old = self._deployed.get(key, {})
        try:
            new = await self._start(ep.name, variant_plans(ep.pending), old)
        except InstanceStartError as exc:
            # SageMaker rolls back: the old deployment keeps serving, the reason is reported.
            self._store.update_endpoint(ep.name, when_status="Updating", status="InService", pending=None,
                                        failure_reason=f"Update failed: {exc}"[:MAX_FAILURE_REASON])
            return
        self._deployed[key] = new
        self._publish(ep.name, "InService", new)
        kept = {id(i) for v in new.values() for i in v.instances}
        await self._stop([i for v in old.values() for i in v.instances if id(i) not in kept])
        self._store.update_endpoint(ep.name, when_status="Updating", status="InService", pending=None,
                                    deployment=ep.pending, config_name=ep.pending["EndpointConfigName"])

    async def _replace_dead(self, ep: Endpoint) -> None:
        key = ep.name.lower()
        deployment = self._deployed[key]
        for variant in deployment.values():
            for instance in list(variant.instances):
                dead = self._runtime.dead_containers(instance)
                if not dead:
                    continue
                log.warning("endpoint %s: container(s) %s of instance %s exited; replacing the instance",
                            ep.name, ", ".join(dead), instance.spec.instance_id)
                variant.instances.remove(instance)
                self._publish(ep.name, "InService", deployment)
                # Start the replacement before removing the dead instance, so that nothing of the
                # new one (a port, a network) can collide with what the old one is releasing.
                try:
                    variant.instances.append(await self._start_instance(ep.name, variant.plan))
                except InstanceStartError as exc:
                    log.error("endpoint %s: replacing an instance failed: %s", ep.name, exc)
                finally:
                    await self._stop([instance])
                self._publish(ep.name, "InService", deployment)

    async def _delete(self, ep: Endpoint) -> None:
        await self._stop_all(ep, publish_status=None)
        shutil.rmtree(self._provisioner.log_dir(ep.name), ignore_errors=True)
        self._store.delete_endpoint(ep.name)

    async def _stop_all(self, ep: Endpoint, publish_status: str | None) -> None:
        deployment = self._deployed.pop(ep.name.lower(), {})
        self._publish(ep.name, publish_status, {})
        await self._stop([i for v in deployment.values() for i in v.instances])
        for variant in deployment.values():
            for container in variant.plan.containers:
                self._metrics.forget(ep.name, variant.plan.name, container.hostname)

    # --- instances ---------------------------------------------------------------------------

    def _dead_instances(self, key: str) -> bool:
        return any(self._runtime.dead_containers(i) for v in self._deployed[key].values() for i in v.instances)

    async def _start(self, endpoint: str, plans: list[VariantPlan], reuse: Deployment) -> Deployment:
        """Start every variant's instances together; on any failure stop what started and raise.

        Instances of an unchanged variant in ``reuse`` are kept, so a weights-only update starts
        nothing and a capacity change starts only the difference.
        """
        deployment: Deployment = {}
        starts = []
        for plan in plans:
            old = reuse.get(plan.name)
            same = old is not None and _runs_alike(old.plan, plan)
            kept = old.instances[: plan.instance_count] if same else []
            deployment[plan.name] = DeployedVariant(plan, list(kept))
            starts += [(plan, self._start_instance(endpoint, plan)) for _ in range(plan.instance_count - len(kept))]
        results = await asyncio.gather(*(s for _, s in starts), return_exceptions=True)
        started = [r for r in results if isinstance(r, RunningInstance)]
        error = next((r for r in results if isinstance(r, BaseException)), None)
        if error is not None:
            await self._stop(started)
            if isinstance(error, InstanceStartError):
                raise error
            raise InstanceStartError(f"Starting an instance failed: {type(error).__name__}: {error}") from error
        for (plan, _), instance in zip(starts, started):
            deployment[plan.name].instances.append(instance)
        return deployment

    async def _start_instance(self, endpoint: str, plan: VariantPlan) -> RunningInstance:
        spec = await self._provisioner.instance_spec(endpoint, plan)
        try:
            return await self._runtime.start_instance(spec)
        except BaseException:
            shutil.rmtree(spec.workdir, ignore_errors=True)
            raise

    async def _stop(self, instances: list[RunningInstance]) -> None:
        await asyncio.gather(*(self._runtime.stop_instance(i) for i in instances))

    async def shutdown(self) -> None:
        """Stop every instance; the store is untouched, so a restart brings them back."""
        for task in self._work.values():
            # A delete is let finish (it only stops things): cancelling it half way would leave
            # the instances it already took out of the deployment running.
            if task.get_name() != "Deleting":
                task.cancel()
        await asyncio.gather(*self._work.values(), return_exceptions=True)
        await self._stop([i for d in self._deployed.values() for v in d.values() for i in v.instances])
        self._deployed.clear()

    # --- routing -----------------------------------------------------------------------------

    def _publish(self, endpoint: str, status: str | None, deployment: Deployment) -> None:
        if status is None:
            self._gateway.publish(None, endpoint)
            return
        variants = tuple(
            VariantRoute(
                name=v.plan.name,
                weight=v.plan.weight,
                mode=v.plan.mode,
                hostnames=tuple(c.hostname for c in v.plan.containers),
                instances=tuple(
                    InstanceRoute(
                        i.spec.instance_id,
                        tuple(
                            ContainerRoute(c.hostname, c.url, self._metrics.for_container(endpoint, v.plan.name, c.hostname))
                            for c in i.containers
                        ),
                    )
                    for i in v.instances
                ),
            )
            for v in deployment.values()
        )
        self._gateway.publish(EndpointRoute(endpoint, status, variants), endpoint)


def _runs_alike(a: VariantPlan, b: VariantPlan) -> bool:
    """Whether instances of plan ``a`` can serve plan ``b`` (weights and counts may differ)."""
    return (a.containers, a.mode, a.instance_type) == (b.containers, b.mode, b.instance_type)

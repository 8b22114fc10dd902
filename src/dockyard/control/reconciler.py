"""The reconciler: drives the runtime towards the desired state in the store.

One loop handles everything: a new endpoint (Creating → InService | Failed), an update
(Updating → InService, blue/green, rolled back on failure), a delete (Deleting → gone), a
server restart (InService endpoints with nothing running yet) and crashed containers (their
instances are replaced) are all "heal": start what is missing, with backoff (``healing``). It
wakes when the control plane rings, when its own work finishes, when a backoff ends, when the
runtime reports a container's exit (``exited``: the instance leaves the routes at once), and every
``health_interval`` seconds to look for dead containers the runtime could not report. Work runs as
one task per endpoint.

After every change it hands the gateway what runs (``RouteBuilder.publish``); an instance an
update leaves out is stopped once the gateway has answered what it was already sending there
(``drain``). Store calls run on
the store's own thread; nothing here blocks the event loop the gateway shares.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dockyard.control import multimodel
from dockyard.control.healing import Backoff
from dockyard.control.plans import VariantPlan
from dockyard.control.provision import Provisioner, plan_digest
from dockyard.control.scaling import IdleScaler
from dockyard.control.status import EndpointStatus
from dockyard.control.store import Endpoint, EndpointSummary, Store
from dockyard.doorbell import rung
from dockyard.gateway.routing import RouteBuilder, VariantDeployment
from dockyard.runtime.base import InstanceExit, InstanceStartError, RunningInstance, Runtime, note_in_log

log = logging.getLogger(__name__)
MAX_FAILURE_REASON = 1024
Status = EndpointStatus


@dataclass
class RunningVariant:
    plan: VariantPlan
    instances: list[RunningInstance] = field(default_factory=list)


# What runs for one endpoint: variant name → its plan and instances.
Running = dict[str, RunningVariant]

# Waits until the gateway has nothing in flight on these instance ids (bounded); the ones still busy.
Drain = Callable[[list[str]], Awaitable[list[str]]]


async def _nothing_in_flight(instance_ids: list[str]) -> list[str]:
    return []


@dataclass
class Work:
    """The task reconciling one endpoint, and the status it was started for."""

    status: EndpointStatus
    task: asyncio.Task[None]
    cancelled: bool = False

    def cancel(self) -> None:
        # Once only: a task cleaning up after a cancellation must not be cut short again.
        if not self.cancelled:
            self.cancelled = True
            self.task.cancel()


class Reconciler:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        provisioner: Provisioner,
        routes: RouteBuilder,
        health_interval: float,
        backoff: tuple[float, float] = (1.0, 30.0),
        idle: IdleScaler | None = None,
        drain: Drain | None = None,
    ) -> None:
        self._store, self._runtime, self._provisioner = store, runtime, provisioner
        self._routes = routes
        self._interval = health_interval
        self._backoff_first, self._backoff_cap = backoff
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[str, Running] = {}
        self._work: dict[str, Work] = {}
        self._healing: dict[str, Backoff] = {}
        # Serverless variants scaled to zero and when to do so (``scaling.py``).
        self._idle = idle or IdleScaler(lambda endpoint, variant: None, float("inf"))
        self._drain = drain or _nothing_in_flight
        # Exits the runtime reported, by instance id, until healing replaces the instance.
        self._exits: dict[str, InstanceExit] = {}
        # (endpoint in lower case, variant) → when and how its last replaced instance ended.
        self._last_exits: dict[tuple[str, str], str] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Publish every stored endpoint to the gateway, then start the loop. Called before the
        port accepts requests, so an endpoint the store has is never "not found" after a restart:
        an InService one answers 503 until its instances are back."""
        self._loop = asyncio.get_running_loop()
        for ep in self._store.list_endpoints():
            if ep.status.serving:
                self._publish(ep.name, ep.status, {p.name: RunningVariant(p) for p in ep.deployment.plans})
            else:
                self._routes.publish(ep.name, ep.status.value)
        self._loop_task = asyncio.create_task(self._run(), name="reconciler")

    def poke(self) -> None:
        """Ring the doorbell; safe from any thread (the control plane runs on the store's)."""
        self.call_soon(self._wake.set)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the reconciler's event loop, from any thread."""
        if self._loop is None:
            callback()
        else:
            self._loop.call_soon_threadsafe(callback)

    async def shutdown(self) -> None:
        """Stop the loop and every instance; the store is untouched, so a restart brings them back."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for work in self._work.values():
            # A delete is let finish (it only stops things): cancelled half way it would leave
            # the instances it already took out of the deployment running.
            if work.status != Status.DELETING:
                work.cancel()
        await asyncio.gather(*(w.task for w in self._work.values()), return_exceptions=True)
        await self._stop([i for r in self._running.values() for v in r.values() for i in v.instances])
        self._running.clear()

    def wake(self, endpoint: str, variant: str) -> None:
        """A request needs an instance of a serverless variant (the gateway's cold start): start
        it now, without the backoff of a streak of crashes."""
        if self._idle.wake(endpoint.lower(), variant):
            self._healing.pop(endpoint.lower(), None)
        self.poke()

    def exited(self, event: InstanceExit) -> None:
        """The runtime's news that containers of an instance died: it leaves the routes now (new
        requests go to the other instances, or answer 503), and healing replaces it."""
        spec = event.instance.spec
        if spec.instance_id in self._exits:  # told already (a sandbox and its containers)
            return
        self._exits[spec.instance_id] = event
        log.warning("endpoint %s: container(s) %s of instance %s %s; taking it out of rotation", spec.endpoint,
                    ", ".join(event.hostnames), spec.instance_id, event.what)
        self._routes.withdraw(spec.endpoint, spec.instance_id, lost=event.host_lost)
        self.poke()

    def last_exit(self, endpoint: str, variant: str) -> str | None:
        """When and how the variant's last replaced instance ended (``dockyard endpoints``)."""
        return self._last_exits.get((endpoint.lower(), variant))

    def running(self, endpoint: str) -> list[RunningInstance]:
        return [i for v in self._running.get(endpoint.lower(), {}).values() for i in v.instances]

    async def _run(self) -> None:
        adopted = await self._adopt(await self._runtime.adopt())
        await self._runtime.remove_orphans()
        # Nothing else runs yet: every other instance directory is of an instance gone with the last server.
        await asyncio.to_thread(self._provisioner.sweep_instances, adopted)
        while True:
            self._wake.clear()
            await self._pass()
            await rung(self._wake, self._interval)

    async def _adopt(self, instances: list[RunningInstance]) -> set[str]:
        """Take over the instances a killed server left running (docker runtime) that an InService
        endpoint still wants; stop the others. The ids of those kept."""
        kept = [i for i in instances if await self._take_over(i)]
        await self._stop([i for i in instances if i not in kept])
        return {i.spec.instance_id for i in kept}

    async def _take_over(self, instance: RunningInstance) -> bool:
        spec = instance.spec
        ep = await self._store.run(self._store.get_endpoint, spec.endpoint)
        if ep is None or ep.status != Status.IN_SERVICE:
            return False
        plan = next((p for p in ep.deployment.plans if p.name == spec.variant), None)
        if plan is None or plan_digest(plan) != spec.plan_digest:
            return False
        running = self._running.setdefault(ep.name.lower(), {p.name: RunningVariant(p) for p in ep.deployment.plans})
        if len(running[plan.name].instances) >= plan.instance_count:
            return False
        running[plan.name].instances.append(instance)
        self._publish(ep.name, Status.IN_SERVICE, running)
        log.info("endpoint %s: took over instance %s, still running from before the restart", ep.name, spec.instance_id)
        return True

    async def _pass(self) -> None:
        for ep in await self._store.run(self._store.endpoint_summaries):
            key = ep.name.lower()
            work = self._work.get(key)
            if work is not None:
                if ep.status == Status.DELETING and work.status != Status.DELETING:
                    work.cancel()  # a delete overrides whatever was in progress
                continue
            step = self._step(ep)
            if step is not None:
                task = asyncio.create_task(step)
                self._work[key] = Work(ep.status, task)
                task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        if self._work.get(key) is not None and self._work[key].task is task:
            del self._work[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("reconciling endpoint %s failed", key, exc_info=task.exception())
        self.poke()

    def _step(self, ep: EndpointSummary) -> Coroutine[Any, Any, None] | None:
        """The work an endpoint needs now, or None when it is where it should be."""
        key = ep.name.lower()
        if ep.status == Status.DELETING:
            return self._delete(ep.name)
        if ep.status == Status.CREATING:
            return self._create(ep.name)
        if ep.status == Status.UPDATING:
            return self._update(ep.name)
        if ep.status == Status.IN_SERVICE:
            if self._needs_healing(key):
                return self._heal(ep.name)
            idle = self._idle.idle_variants(ep.name, [(v.plan, len(v.instances)) for v in self._running.get(key, {}).values()])
            return self._scale_to_zero(ep.name, idle) if idle else None
        if key in self._running:  # Failed: nothing may keep running
            return self._stop_all(ep.name, ep.status)
        return None

    # --- steps -------------------------------------------------------------------------------

    async def _get(self, name: str, status: EndpointStatus) -> Endpoint | None:
        """The endpoint in full if it still has ``status`` (else its work is no longer wanted)."""
        ep = await self._store.run(self._store.get_endpoint, name)
        return ep if ep is not None and ep.status == status else None

    async def _set(self, name: str, when: EndpointStatus, **fields: Any) -> bool:
        if isinstance(fields.get("failure_reason"), str):
            fields["failure_reason"] = fields["failure_reason"][:MAX_FAILURE_REASON]
        def update() -> bool:
            return self._store.update_endpoint(name, when, **fields)

        return await self._store.run(update)

    async def _create(self, name: str) -> None:
        ep = await self._get(name, Status.CREATING)
        if ep is None:
            return
        self._routes.publish(ep.name, Status.CREATING.value)
        try:
            running = await self._start(ep.name, ep.deployment.plans, {})
        except InstanceStartError as exc:
            await self._set(ep.name, Status.CREATING, status=Status.FAILED, failure_reason=str(exc))
            self._routes.publish(ep.name, Status.FAILED.value)
            return
        # Recorded before the status moves on: a delete arriving now finds and stops it.
        self._running[ep.name.lower()] = running
        self._idle.forget(ep.name.lower())
        if await self._set(ep.name, Status.CREATING, status=Status.IN_SERVICE):
            self._publish(ep.name, Status.IN_SERVICE, running)

    async def _update(self, name: str) -> None:
        ep = await self._get(name, Status.UPDATING)
        if ep is None or ep.pending is None:
            return
        key = ep.name.lower()
        old = self._running.get(key, {})
        try:
            new = await self._start(ep.name, ep.pending.plans, old)
        except InstanceStartError as exc:
            # SageMaker rolls back: the old deployment keeps serving, the reason is reported.
            await self._set(ep.name, Status.UPDATING, status=Status.IN_SERVICE, pending=None,
                            failure_reason=f"Update failed: {exc}")
            return
        self._running[key] = new
        self._idle.forget(key)
        self._publish(ep.name, Status.IN_SERVICE, new)
        kept = {id(i) for v in new.values() for i in v.instances}
        leaving = [i for v in old.values() for i in v.instances if id(i) not in kept]
        # Out of rotation now; what they are still answering finishes before they stop.
        try:
            if busy := await self._drain([i.spec.instance_id for i in leaving]):
                log.warning("endpoint %s: stopping instance(s) %s with invocations still in flight after the "
                            "invocation timeout", ep.name, ", ".join(busy))
        finally:
            # Also when cancelled (a delete): out of ``running``, nothing else would stop them.
            await self._stop(leaving)
        await self._set(ep.name, Status.UPDATING, status=Status.IN_SERVICE, pending=None,
                        deployment=ep.pending, config_name=ep.pending.config_name)

    def _backoff(self, key: str) -> Backoff:
        return self._healing.setdefault(key, Backoff(self._backoff_first, self._backoff_cap))

    def _needs_healing(self, key: str) -> bool:
        running = self._running.get(key)
        if running is None:  # after a restart: nothing runs yet
            return True
        if any(self._runtime.dead_containers(i) for v in running.values() for i in v.instances):
            return True
        backoff, now = self._backoff(key), asyncio.get_running_loop().time()
        if all(len(v.instances) >= self._idle.wanted(key, v.plan) for v in running.values()):
            backoff.whole(now)
            return False
        return backoff.next_try() <= now

    async def _heal(self, name: str) -> None:
        """Replace dead instances and start missing ones (all of them, after a restart)."""
        key = name.lower()
        if key not in self._running:
            ep = await self._get(name, Status.IN_SERVICE)
            if ep is None:
                return
            self._running[key] = {p.name: RunningVariant(p) for p in ep.deployment.plans}
        running = self._running[key]
        dead, news = self._take_out_dead(name, running)
        backoff, loop = self._backoff(key), asyncio.get_running_loop()
        try:
            if news:
                # DescribeEndpoint says what happened (though the endpoint stays InService), from
                # before the replacement serves; a replacement that fails says so instead.
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                await self._set(name, Status.IN_SERVICE, failure_reason=f"Instance replaced ({when}): {'; '.join(news)}.")
            missing = [v.plan for v in running.values() for _ in range(self._idle.wanted(key, v.plan) - len(v.instances))]
            error = None
            if missing and backoff.next_try() <= loop.time():
                # Replacements start before the dead instances stop, so that nothing of the new ones
                # (a port, a network) can collide with what the old ones are releasing.
                try:
                    started, error = await self._start_instances(name, missing)
                finally:
                    backoff.attempted(loop.time())
                for plan, instance in started:
                    running[plan.name].instances.append(instance)
                self._publish(name, Status.IN_SERVICE, running)
            if error is not None:
                log.error("endpoint %s: replacing an instance failed; retrying with backoff: %s", name, error)
                await self._set(name, Status.IN_SERVICE, failure_reason=f"Replacing an instance failed: {error}")
        finally:
            # Also when cancelled (a delete): out of ``running``, nothing else would stop them.
            await self._stop(dead)
        if any(len(v.instances) < self._idle.wanted(key, v.plan) for v in running.values()):
            loop.call_later(max(backoff.next_try() - loop.time(), 0.0), self.poke)

    def _take_out_dead(self, name: str, running: Running) -> tuple[list[RunningInstance], list[str]]:
        """Remove the instances with dead containers from ``running`` and the routes, saying so in
        the server's log and the containers' own; the instances, and what happened to each."""
        dead, lost, news = [], [], []
        for variant in running.values():
            for instance in list(variant.instances):
                if exited := self._runtime.dead_containers(instance):
                    event = self._exits.pop(instance.spec.instance_id, None)
                    what = f"container(s) {', '.join(exited)} of instance {instance.spec.instance_id} " + (
                        event.what if event is not None else "exited")
                    log.warning("endpoint %s: %s; replacing the instance", name, what)
                    for container in instance.containers:
                        if container.hostname in exited:
                            note_in_log(container, f"{what}; dockyard replaces the instance")
                    variant.instances.remove(instance)
                    dead.append(instance)
                    news.append(what)
                    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    self._last_exits[(name.lower(), variant.plan.name)] = f"{when} {what}"
                    # In flight there, requests are never answered when the host went away (or,
                    # unreported, may have); a container's own exit ends its connections itself.
                    if event is None or event.host_lost:
                        lost.append(instance.spec.instance_id)
        if dead:
            self._publish(name, Status.IN_SERVICE, running, lost=lost)
        return dead, news

    async def _scale_to_zero(self, name: str, variants: list[str]) -> None:
        """Stop the instances of serverless variants idle for long enough (checked again here,
        with no await before the route changes, so a request arriving meanwhile keeps them)."""
        running = self._running.get(name.lower(), {})
        stopped = []
        for variant in self._idle.idle_variants(name, [(running[v].plan, len(running[v].instances)) for v in variants]):
            log.info("endpoint %s: serverless variant %s is idle; scaling it to zero", name, variant)
            self._idle.cooled(name.lower(), variant)
            stopped += running[variant].instances
            running[variant].instances = []
        if stopped:
            self._publish(name, Status.IN_SERVICE, running)
            await self._stop(stopped)

    async def _delete(self, name: str) -> None:
        await self._stop_all(name, None)
        self._healing.pop(name.lower(), None)
        self._idle.forget(name.lower())
        for key in [k for k in self._last_exits if k[0] == name.lower()]:
            del self._last_exits[key]
        await asyncio.to_thread(shutil.rmtree, self._provisioner.log_dir(name), ignore_errors=True)
        await self._store.run(self._store.delete_endpoint, name)

    async def _stop_all(self, name: str, status: EndpointStatus | None) -> None:
        running = self._running.pop(name.lower(), {})
        self._routes.publish(name, status.value if status is not None else None)
        await self._stop([i for v in running.values() for i in v.instances])

    # --- instances ---------------------------------------------------------------------------

    async def _start(self, endpoint: str, plans: tuple[VariantPlan, ...], reuse: Running) -> Running:
        """Start every variant's instances together; on any failure stop what started and raise.

        Instances of an unchanged variant in ``reuse`` are kept, so a weights-only update starts
        nothing and a capacity change starts only the difference.
        """
        running: Running = {}
        wanted: list[VariantPlan] = []
        for plan in plans:
            old = reuse.get(plan.name)
            kept = old.instances[: plan.instance_count] if old is not None and _runs_alike(old.plan, plan) else []
            running[plan.name] = RunningVariant(plan, list(kept))
            wanted += [plan] * (plan.instance_count - len(kept))
        started, error = await self._start_instances(endpoint, wanted)
        if error is not None:
            await self._stop([instance for _, instance in started])
            raise error
        for plan, instance in started:
            running[plan.name].instances.append(instance)
        return running

    async def _start_instances(
        self, endpoint: str, plans: list[VariantPlan]
    ) -> tuple[list[tuple[VariantPlan, RunningInstance]], InstanceStartError | None]:
        """Start one instance per plan, together: those that started, and the first failure.

        Cancelled (a DeleteEndpoint, a shutdown), it cancels the starts and stops whatever had
        already started before it re-raises: nothing may outlive its endpoint.
        """
        tasks = [asyncio.ensure_future(self._start_instance(endpoint, plan)) for plan in plans]
        if not tasks:
            return [], None
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await self._stop([r for r in results if isinstance(r, RunningInstance)])
            raise
        started = [(p, t.result()) for p, t in zip(plans, tasks) if not t.cancelled() and t.exception() is None]
        failures = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
        if not failures:
            return started, None
        first = failures[0]
        if isinstance(first, InstanceStartError):
            return started, first
        log.error("starting an instance of endpoint %s failed", endpoint, exc_info=first)
        return started, InstanceStartError(f"Starting an instance failed: {type(first).__name__}: {first}")

    async def _start_instance(self, endpoint: str, plan: VariantPlan) -> RunningInstance:
        spec = await self._provisioner.instance_spec(endpoint, plan)
        try:
            return await self._runtime.start_instance(spec)
        except BaseException:
            shutil.rmtree(spec.workdir, ignore_errors=True)
            raise

    async def _stop(self, instances: list[RunningInstance]) -> None:
        for instance in instances:
            self._exits.pop(instance.spec.instance_id, None)
        await asyncio.gather(*(self._runtime.stop_instance(i) for i in instances))

    # --- routing -----------------------------------------------------------------------------

    def _publish(self, endpoint: str, status: EndpointStatus, running: Running, lost: list[str] | None = None) -> None:
        self._routes.publish(endpoint, status.value, lost=lost or (), variants=[
            VariantDeployment(
                name=v.plan.name,
                weight=v.plan.weight,
                mode=v.plan.mode,
                hostnames=tuple(c.hostname for c in v.plan.containers),
                desired_instances=self._idle.wanted(endpoint.lower(), v.plan),
                # Never one with a dead container, whichever work publishes before healing replaces it.
                instances={i.spec.instance_id: {c.hostname: c.url for c in i.containers} for i in v.instances
                           if not self._runtime.dead_containers(i)},
                multi_model=multimodel.route(v.plan, v.instances),
                max_concurrency=v.plan.serverless.max_concurrency if v.plan.serverless else None,
            )
            for v in running.values()
        ])


def _runs_alike(a: VariantPlan, b: VariantPlan) -> bool:
    """Whether instances of plan ``a`` can serve plan ``b`` (weights and counts may differ)."""
    return (a.containers, a.mode, a.instance_type) == (b.containers, b.mode, b.instance_type)

"""The process runtime's stand-in for a container memory limit (docker's ``mem_limit``): a
serverless instance's containers are stopped when their resident memory passes its MemorySizeInMB,
a multi-model instance's when it passes its instance type's memory (the models it loads on demand
are what the platform must keep within it, as docker would enforce).

A container is a process group (the model server and its forked workers), so its memory is the
group's resident set, read from /proc every ``INTERVAL`` seconds. Over the limit, the group is
killed at once; ``on_exceeded(container URL, reason)`` is told first, so the invocation that was
in flight answers ModelError naming the limit, and the reconciler replaces the dead container
(``stopped`` keeps the reason by URL until the runtime reports the exit with it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from dockyard.runtime import processes
from dockyard.runtime.base import RunningContainer, RunningInstance
from dockyard.runtime.instance_types import resources_for, serverless_memory_bytes

log = logging.getLogger(__name__)
INTERVAL = 0.25


class MemoryWatch:
    def __init__(self) -> None:
        self.on_exceeded: Callable[[str, str], None] = lambda url, reason: None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Container URL → why it was killed ("was stopped: …"), for the runtime's exit report.
        self.stopped: dict[str, str] = {}

    def watch(self, instance: RunningInstance) -> None:
        """Watch ``instance`` if it is serverless or multi-model."""
        kind = instance.spec.instance_type
        limit, what = serverless_memory_bytes(kind), "the variant's MemorySizeInMB"
        resources = resources_for(kind)
        if limit is None and resources is not None and any(c.multi_model for c in instance.spec.containers):
            limit, what = resources.memory_bytes, f"the memory of one {kind}"
        if limit is not None:
            self._tasks[instance.spec.instance_id] = asyncio.create_task(self._watch(instance, limit, what))

    def unwatch(self, instance: RunningInstance) -> None:
        task = self._tasks.pop(instance.spec.instance_id, None)
        if task is not None:
            task.cancel()
        for container in instance.containers:
            self.stopped.pop(container.url, None)

    async def _watch(self, instance: RunningInstance, limit: int, what: str) -> None:
        while True:
            for container in instance.containers:
                if container.handle.returncode is None:
                    rss = await asyncio.to_thread(processes.group_rss, container.handle.pid)
                    if rss > limit:
                        self._stop(instance, container, rss, limit, what)
            await asyncio.sleep(INTERVAL)

    def _stop(self, instance: RunningInstance, container: RunningContainer, rss: int, limit: int, what: str) -> None:
        stopped = f"was stopped: its resident memory ({rss / 2**20:.0f} MB) exceeded {what} ({limit // 2**20} MB)"
        reason = f"Container {container.hostname} {stopped}."
        log.warning("endpoint %s, instance %s: %s", instance.spec.endpoint, instance.spec.instance_id, reason)
        self.stopped[container.url] = stopped
        self.on_exceeded(container.url, reason)
        processes.signal_group(container.handle.pid, signal.SIGKILL)

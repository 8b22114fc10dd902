"""A multi-model instance's memory: which loaded models go before one more is loaded, so that the
container never outgrows the instance's memory (docker's limit would OOM-kill it).

Before a load the container's memory is read afresh, and the least recently used models are
unloaded until it, plus what every load in flight will add, fits under the instance's memory less
a headroom. What a load adds is known only once it is done, so each load in flight *reserves* an
estimate: the growth measured when the same model loaded before, else the largest growth measured
on the instance. Until one growth is measured, loads run one at a time, so that the first is
measured alone. A load's growth (memory after − before) is kept only when nothing else loaded or
unloaded on the instance in between (that would be counted too). A reservation lasts until the
reading after its load, so a model's memory is counted at every moment: in the reading, in the
reservation, or in both (never less).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Loading stops short of the instance's memory by this fraction: room for requests in flight.
MEMORY_HEADROOM = 0.9

# Reads the container's memory now (None: unknown); unloads the least recently used model (False:
# nothing is loaded).
Reader = Callable[[], Awaitable[int | None]]
Evict = Callable[[], Awaitable[bool]]


@dataclass
class Lease:
    """One load's place in the budget, from ``admit`` to ``settle``."""

    target: str
    token: int
    # The container's memory just before the load (None: unknown, nothing is measured).
    before: int | None
    # The instance's load and unload count then: changed by the time of the reading after, the
    # growth is not this model's alone.
    changes: int
    # Held while nothing is measured on the instance: loads run one at a time.
    first: bool = False


class MemoryBudget:
    """One instance's memory as the platform accounts it."""

    def __init__(self, memory_bytes: int | None) -> None:
        self.limit = None if memory_bytes is None else int(memory_bytes * MEMORY_HEADROOM)
        # TargetModel → the container's growth when it last loaded alone.
        self.measured: dict[str, int] = {}
        # Load → bytes reserved for it until the reading after it.
        self.reserved: dict[int, int] = {}
        self.changes = 0
        self._unloads = 0  # in flight
        self._tokens = itertools.count()
        self._first = asyncio.Lock()

    def estimate(self, target: str) -> int | None:
        """What loading ``target`` will add: its own growth, else the largest measured here."""
        return self.measured.get(target, max(self.measured.values(), default=None))

    async def admit(self, target: str, read: Reader, evict: Evict) -> Lease:
        """Make room for ``target`` (unloading least recently used models) and reserve it."""
        token = next(self._tokens)
        if self.limit is None:
            return Lease(target, token, None, self.changes)
        first = False
        if self.estimate(target) is None:
            await self._first.acquire()  # released by ``settle`` of the load holding it
            first = self.estimate(target) is None
            if not first:
                self._first.release()
        try:
            expected = self.estimate(target) or 0
            resident = await read()
            while resident is not None and resident + sum(self.reserved.values()) + expected > self.limit:
                log.info("container near its memory (%d + %d reserved + %d of %d bytes): unloading one",
                         resident, sum(self.reserved.values()), expected, self.limit)
                if not await evict():
                    break
                resident = await read()
        except BaseException:
            if first:
                self._first.release()
            raise
        # Measured alone: no other load is in flight now, and none starts or unloads until after.
        alone = not self.reserved
        self.changes += 1
        self.reserved[token] = expected
        return Lease(target, token, resident if alone else None, self.changes, first)

    def unloading(self) -> None:
        """A model is being unloaded: a growth measured meanwhile would be short by its memory."""
        self.changes += 1
        self._unloads += 1

    def unloaded(self) -> None:
        self.changes += 1
        self._unloads -= 1

    async def settle(self, lease: Lease, read: Reader, loaded: bool) -> None:
        """After the load of ``lease``: measure its growth if it was alone, then drop its reservation."""
        try:
            if loaded and lease.before is not None:
                after = await read()
                if after is not None and self.changes == lease.changes and not self._unloads:
                    self.measured[lease.target] = max(0, after - lease.before)
        finally:
            self.reserved.pop(lease.token, None)
            if lease.first:
                self._first.release()

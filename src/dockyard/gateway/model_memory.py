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
reservation, or in both (never less) — and a reading still counts the reservations that ended
while it was taken (their model may have been loaded just after it). When every loaded model is
in use and something else will free memory (a load in flight settles, an unload ends, an
invocation ends), a load waits for that rather than going over the budget.
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

# Reads the container's memory now (None: unknown); unloads the least recently used model not in
# use (False: there is none); whether a loaded model is in use (free once its invocations end).
Reader = Callable[[], Awaitable[int | None]]
Evict = Callable[[], Awaitable[bool]]
Busy = Callable[[], bool]


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
        # Set (and dropped) whenever memory may have become free: loads waiting for room look again.
        # Made only when a load looks for room, so that an invocation ending costs no new Event.
        self._room: asyncio.Event | None = None

    def estimate(self, target: str) -> int | None:
        """What loading ``target`` will add: its own growth, else the largest measured here."""
        return self.measured.get(target, max(self.measured.values(), default=None))

    async def admit(self, target: str, read: Reader, evict: Evict, busy: Busy) -> Lease:
        """Make room for ``target`` (unloading least recently used models, or waiting for one to
        be free) and reserve it."""
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
            while True:
                if self._room is None:
                    self._room = asyncio.Event()
                room = self._room  # whatever frees memory from now on wakes this load
                resident, reserved, alone = await self._reading(read)
                if resident is None or resident + reserved + expected <= self.limit:
                    break
                log.info("container near its memory (%d + %d reserved + %d of %d bytes): unloading one",
                         resident, reserved, expected, self.limit)
                if await evict():
                    continue
                if not (self.reserved or self._unloads or busy()):
                    break  # nothing will free memory: the load goes ahead (a 507 unloads, or it fails)
                log.info("every loaded model is in use: %s waits for room", target)
                await room.wait()
        except BaseException:
            if first:
                self._first.release()
            raise
        self.changes += 1
        self.reserved[token] = expected
        # Measured alone: no other load is in flight now, and none starts or unloads until after.
        return Lease(target, token, resident if alone else None, self.changes, first)

    async def _reading(self, read: Reader) -> tuple[int | None, int, bool]:
        """The container's memory now, the bytes reserved beside it, and whether no load was in
        flight. A reservation that ends while the reading is taken still counts: its model may
        have been loaded after the container was read."""
        held = dict(self.reserved)
        resident = await read()
        held.update(self.reserved)
        return resident, sum(held.values()), not held

    def freed(self) -> None:
        """Memory may have become free (a reservation ended, an unload ended, a model's
        invocations ended): loads waiting for room read the container again."""
        if self._room is not None:
            self._room.set()
            self._room = None

    def unloading(self) -> None:
        """A model is being unloaded: a growth measured meanwhile would be short by its memory."""
        self.changes += 1
        self._unloads += 1

    def unloaded(self) -> None:
        self.changes += 1
        self._unloads -= 1
        self.freed()

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
            self.freed()

"""A multi-model instance's memory budget (``gateway/model_memory.py``) where the order of its
awaits matters: the reading of the container's memory takes time (a thread, the engine), and
loads settle meanwhile."""

from __future__ import annotations

import asyncio

from dockyard.gateway.model_memory import MemoryBudget

GIB = 1024**3


class Container:
    """The container's memory as the budget reads it; a reading may be held once taken."""

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.unloads = 0
        # While set and not yet fired, a reading is held after it was taken (``taken`` fires).
        self.hold: asyncio.Event | None = None
        self.taken = asyncio.Event()

    async def read(self) -> int:
        reading = self.memory
        if self.hold is not None:
            self.taken.set()
            await self.hold.wait()
        return reading

    async def evict(self) -> bool:
        self.unloads += 1
        self.memory -= GIB
        return True


async def test_a_reservation_that_ends_during_a_reading_still_counts() -> None:
    # 8 GiB, 90 % usable: 7.2 GiB, room for 7 models of 1 GiB; 6 are loaded.
    budget = MemoryBudget(8 * GIB)
    budget.measured["m0"] = GIB
    container = Container(6 * GIB)
    c = await budget.admit("c", container.read, container.evict, lambda: False)
    assert container.unloads == 0  # 6 + c's 1 GiB reserved fits
    container.hold = hold = asyncio.Event()
    b = asyncio.ensure_future(budget.admit("b", container.read, container.evict, lambda: False))
    await container.taken.wait()  # b's reading says 6 GiB ...
    container.hold = None
    container.memory += GIB  # ... then c loads, and its settle reads 7 GiB and ends its reservation
    await budget.settle(c, container.read, loaded=True)
    hold.set()
    await b
    # c's 1 GiB was in neither b's reading nor, any longer, the reservations: counting it anyway,
    # b unloaded one model rather than make 8 GiB of 7.2.
    assert container.unloads == 1 and container.memory + sum(budget.reserved.values()) == 7 * GIB


async def test_a_load_with_nothing_to_wait_for_goes_ahead() -> None:
    # Over the budget with nothing that can be unloaded, no load in flight and no model in use:
    # nothing will free memory, so the load does not wait for ever (the container answers 507).
    budget = MemoryBudget(8 * GIB)
    budget.measured["m0"] = GIB
    container = Container(8 * GIB)

    async def nothing_loaded() -> bool:
        return False

    lease = await asyncio.wait_for(budget.admit("b", container.read, nothing_loaded, lambda: False), 10)
    assert budget.reserved == {lease.token: GIB}

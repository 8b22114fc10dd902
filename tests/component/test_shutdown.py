"""Shutdown ends the reconciler's loop even when its doorbell rings at the moment the loop is
cancelled (a poke as the server stops). With ``asyncio.wait_for`` on Python < 3.12 that
cancellation was swallowed, the loop went on, and the shutdown awaiting it hung forever. The
other loops (the asynchronous queue's, the console's) wait with the same ``doorbell.rung``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from component_harness import WAIT_LIMIT
from fake_runtime import FakeRuntime
from prometheus_client import CollectorRegistry

from dockyard.artifacts.store import ArtifactStore
from dockyard.control.provision import Provisioner
from dockyard.control.reconciler import Reconciler
from dockyard.control.store import Store
from dockyard.doorbell import rung
from dockyard.gateway.metrics import GatewayMetrics
from dockyard.gateway.routing import RouteBuilder


class Doorbell(asyncio.Event):
    """An event that, the moment a waiter wakes, starts ``on_ring`` (once; ``rang`` says it has):
    it runs before the woken waiter's caller does."""

    def __init__(self) -> None:
        super().__init__()
        self.rang = False
        self.on_ring: Callable[[], object] = lambda: None

    async def wait(self) -> bool:
        await super().wait()
        if not self.rang:
            self.rang = True
            self.on_ring()
        return True


async def ring_until_heard(bell: Doorbell, ring: Callable[[], None]) -> None:
    """Ring until a waiter has heard it: a loop clears its doorbell at the top of each round, which
    may swallow a ring that came before."""
    async def poll() -> None:
        while not bell.rang:
            ring()
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), WAIT_LIMIT)


async def test_shutdown_ends_the_loop_when_a_poke_arrives_as_it_is_cancelled(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    routes = RouteBuilder(GatewayMetrics(CollectorRegistry()), lambda route, name: None)
    reconciler = Reconciler(store, FakeRuntime(), Provisioner(tmp_path, ArtifactStore(tmp_path / "cache"), 5.0), routes,
                            health_interval=0.02)
    bell = reconciler._wake = Doorbell()
    shutdowns: list[asyncio.Task[None]] = []
    bell.on_ring = lambda: shutdowns.append(asyncio.ensure_future(reconciler.shutdown()))
    reconciler.start()
    try:
        await ring_until_heard(bell, reconciler.poke)
        done, _ = await asyncio.wait(shutdowns, timeout=WAIT_LIMIT)
        assert done, "the reconciler's loop outlived its cancellation, and its shutdown waits for it forever"
    finally:
        store.close()


async def test_a_loop_waiting_on_rung_ends_when_cancelled_as_its_event_is_set() -> None:
    bell = Doorbell()

    async def loop() -> None:
        while True:
            bell.clear()
            await rung(bell, 0.02)

    task = asyncio.ensure_future(loop())
    bell.on_ring = task.cancel
    await ring_until_heard(bell, bell.set)
    done, _ = await asyncio.wait((task,), timeout=WAIT_LIMIT)
    assert done and task.cancelled()


async def test_rung_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await rung(event, 0.01) is False
    event.set()
    assert await rung(event, WAIT_LIMIT) is True

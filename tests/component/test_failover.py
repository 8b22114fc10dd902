"""Requests in flight when their instance dies. An instance withdrawn from the routes as dead (a
lost or silent node) has its requests sent to another instance of the variant, or answered 503;
a container that hangs up on a request while its instance is still routed (it crashed on it, or
dropped it) is the model's failure: ModelError, not sent again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse
from component_harness import Dockyard, error_of
from fake_runtime import FakeContainer


@pytest.fixture(autouse=True)
async def release_replacements(dockyard: Dockyard) -> AsyncIterator[None]:
    yield
    if dockyard.fake.gate is not None:
        dockyard.fake.gate.set()
        # The replacement of the dead instance starts before the server stops.
        await dockyard.until(lambda: len(dockyard.fake.running) == len(dockyard.fake.started) - 1)
    for container in dockyard.fake.containers():
        if container.hold is not None:
            container.hold.set()  # a held handler would keep its server from stopping


async def in_flight(dockyard: Dockyard, instances: int) -> tuple[asyncio.Task[ClientResponse], FakeContainer]:
    """An invocation held by the container it reached (every container holds), and that container."""
    await dockyard.deploy("ep", instances=instances)
    # Replacements wait: the request is answered by what runs when its instance dies.
    dockyard.fake.gate = asyncio.Event()
    hold = asyncio.Event()
    for container in dockyard.fake.containers("ep"):
        container.hold = hold
    call = asyncio.ensure_future(dockyard.invoke("ep", b'{"n": 1}'))
    await dockyard.until(lambda: any(c.in_flight for c in dockyard.fake.containers("ep")))
    victim = next(c for c in dockyard.fake.containers("ep") if c.in_flight)
    for container in dockyard.fake.containers("ep"):
        if container is not victim:
            container.hold = None
    return call, victim


async def answered_elsewhere(call: asyncio.Task[ClientResponse], victim: FakeContainer) -> None:
    """The held request was answered by another instance, with the body it was sent."""
    resp = await call
    assert resp.status == 200, await resp.read()
    seen = json.loads(await resp.read())
    assert seen["instance"] != victim.instance_id and seen["body"] == '{"n": 1}'


@pytest.mark.parametrize("instances", [1, 2])
async def test_a_container_that_dies_on_a_request_is_model_error_and_the_request_is_not_resent(
        dockyard: Dockyard, instances: int) -> None:
    # Its instance is still routed: most often the model's own code ended the process, and the
    # same request would end the next instance too (SageMaker answers ModelError as well).
    call, victim = await in_flight(dockyard, instances=instances)
    await victim.exit()  # resets the connection of the request it holds
    status, code, message = await error_of(await call)
    assert (status, code) == (424, "ModelError")
    assert "the container closed the connection before it answered" in message
    assert sum(c.invocations for c in dockyard.fake.containers("ep")) == 1


async def test_a_live_container_dropping_the_request_is_model_error(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=2, env={"FAKE_DROP": "1"})
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (424, "ModelError")
    assert "the container closed the connection before it answered" in message
    # Once: the request was not sent to the other instance, and nothing left rotation.
    assert sum(c.invocations for c in dockyard.fake.containers("ep")) == 1
    assert len(dockyard.fake.started) == 2


async def test_a_request_to_an_instance_withdrawn_as_dead_goes_to_another(dockyard: Dockyard) -> None:
    call, victim = await in_flight(dockyard, instances=2)
    # The node went silent: the runtime reports the instance dead, its port still takes
    # connections and the request it holds would never be answered.
    victim.exited = True
    await answered_elsewhere(call, victim)


async def test_a_request_to_the_only_instance_withdrawn_as_dead_is_503(dockyard: Dockyard) -> None:
    call, victim = await in_flight(dockyard, instances=1)
    victim.exited = True
    status, code, _ = await error_of(await call)
    assert (status, code) == (503, "ServiceUnavailable")

"""The console's live channel in-process, on the FakeRuntime: what a page subscribed to
``/_dockyard/console/events`` is sent as an endpoint is created, serves, logs and goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import ClientResponse
from component_harness import WAIT_LIMIT, Dockyard


class Events:
    """The named events of one Server-Sent Events response, parsed as they arrive."""

    def __init__(self, response: ClientResponse) -> None:
        self._response = response

    async def _events(self) -> AsyncIterator[tuple[str, Any]]:
        name, data = None, []
        async for raw in self._response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            elif not line and name is not None:
                yield name, json.loads("\n".join(data))
                name, data = None, []

    async def until(self, event: str, condition: Callable[[Any], bool]) -> Any:
        """The first ``event`` whose payload meets ``condition``."""
        async def read() -> Any:
            async for name, payload in self._events():
                if name == event and condition(payload):
                    return payload

        return await asyncio.wait_for(read(), WAIT_LIMIT)


async def test_a_page_follows_an_endpoint_from_creation_to_deletion(dockyard: Dockyard) -> None:
    assert dockyard.client is not None
    response = await dockyard.client.get("/_dockyard/console/events?endpoint=ep")
    assert response.headers["Content-Type"] == "text/event-stream"
    events = Events(response)
    assert (await events.until("endpoints", lambda p: True)) == {"endpoints": []}

    await dockyard.deploy("ep", env={"FAKE_BODY": "ok", "API_TOKEN": "secret-value"}, wait=None)
    listed = await events.until("endpoints", lambda p: p["endpoints"] and p["endpoints"][0]["status"] == "InService")
    [variant] = listed["endpoints"][0]["variants"]
    assert (variant["name"], variant["weight"], variant["desiredInstances"], variant["currentInstances"]) == \
        ("AllTraffic", 1.0, 1, 1)

    instances = await events.until("instances", lambda p: p["instances"])
    [instance] = instances["instances"]
    assert instance["runtime"] == "fake" and instance["variant"] == "AllTraffic"
    assert [(c["hostname"], c["strategy"], c["health"]) for c in instance["containers"]] == [("primary", "byoc", "serving")]

    for _ in range(3):
        assert (await dockyard.invoke("ep")).status == 200
    point = await events.until("point", lambda p: any(c["rps"] for c in p["containers"]))
    [row] = point["containers"]
    assert (row["variant"], row["container"], row["errorsPerSecond"]) == ("AllTraffic", "primary", 0.0)
    assert row["p50"] is not None and row["p99"] >= row["p50"]

    container = dockyard.fake.running[instance["id"]].containers[0]
    with container.log_path.open("a") as log:
        log.write("a line written after the page opened\n")
    logs = await events.until("logs", lambda p: not p["reset"])
    assert logs["lines"] == [{"instance": instance["id"], "container": "primary",
                              "text": "a line written after the page opened"}]

    details = await (await dockyard.client.get("/_dockyard/console/api/endpoints/ep")).json()
    assert details["deployment"]["models"]["ep"]["PrimaryContainer"]["Environment"] == \
        {"FAKE_BODY": "********", "API_TOKEN": "********"}

    await dockyard.call("DeleteEndpoint", EndpointName="ep")
    await events.until("endpoints", lambda p: p["endpoints"] == [])
    response.close()

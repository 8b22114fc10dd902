"""Every reconciler transition, in-process on the FakeRuntime: create, failed create, update and
its rollback, delete during create, restore after a restart, the container limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from component_harness import IMAGE, AwsError, Dockyard, error_of
from fake_runtime import Behaviour


async def test_create_goes_in_service_and_serves(dockyard: Dockyard) -> None:
    await dockyard.call("CreateModel", ModelName="m", PrimaryContainer={"Image": IMAGE})
    await dockyard.create_config("c", [{"VariantName": "AllTraffic", "ModelName": "m"}])
    await dockyard.call("CreateEndpoint", EndpointName="ep", EndpointConfigName="c")
    assert (await dockyard.describe("ep"))["EndpointStatus"] == "Creating"

    ep = await dockyard.wait_status("ep", "InService")
    assert ep["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert len(dockyard.fake.running) == 1
    resp = await dockyard.invoke("ep", b'{"x": 1}')
    assert resp.status == 200
    echo = json.loads(await resp.read())
    assert echo["body"] == '{"x": 1}' and echo["container"] == "primary"
    assert resp.headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"


async def test_failed_create_reports_the_failure_reason_and_runs_nothing(dockyard: Dockyard) -> None:
    await dockyard.deploy("bad", env={"FAKE_PING_STATUS": "500"}, instances=2, wait="Failed")
    ep = await dockyard.describe("bad")
    assert "did not pass the ping health check (/ping answered 500)" in ep["FailureReason"]
    assert ep["FailureReason"].startswith("Container primary for production variant AllTraffic")
    assert dockyard.fake.running == {}
    status, code, message = await error_of(await dockyard.invoke("bad"))
    assert (status, code) == (400, "ValidationError")
    assert "is not in service (status Failed)" in message


async def test_update_switches_instances_and_a_failed_update_rolls_back(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", env={"FAKE_BODY": "blue"})
    blue = set(dockyard.fake.running)
    await dockyard.create_model("green", env={"FAKE_BODY": "green"})
    await dockyard.create_config("green", [{"VariantName": "AllTraffic", "ModelName": "green"}])
    await dockyard.call("UpdateEndpoint", EndpointName="ep", EndpointConfigName="green")
    ep = await dockyard.wait_status("ep", "InService")
    assert ep["EndpointConfigName"] == "green"
    assert await (await dockyard.invoke("ep")).read() == b"green"
    assert blue.isdisjoint(dockyard.fake.running) and len(dockyard.fake.running) == 1

    await dockyard.create_model("broken", env={"FAKE_PING_STATUS": "503"})
    await dockyard.create_config("broken", [{"VariantName": "AllTraffic", "ModelName": "broken"}])
    await dockyard.call("UpdateEndpoint", EndpointName="ep", EndpointConfigName="broken")
    green = set(dockyard.fake.running)
    await dockyard.wait_status("ep", "Updating")
    ep = await dockyard.wait_status("ep", "InService")
    assert ep["EndpointConfigName"] == "green"
    assert ep["FailureReason"].startswith("Update failed: Container primary")
    assert set(dockyard.fake.running) == green
    assert await (await dockyard.invoke("ep")).read() == b"green"


async def test_delete_during_create_leaves_nothing_running(dockyard: Dockyard) -> None:
    dockyard.fake.gate = asyncio.Event()  # instances start, but do not pass /ping yet
    await dockyard.deploy("ep", instances=3, wait=None)
    await dockyard.until(lambda: len(dockyard.fake.running) == 3)
    await dockyard.call("DeleteEndpoint", EndpointName="ep")
    await dockyard.wait_gone("ep")
    assert dockyard.fake.running == {}
    assert sorted(dockyard.fake.stopped) == sorted(dockyard.fake.started)
    assert not list((dockyard.state_dir / "instances").glob("*"))


async def test_restart_restores_in_service_endpoints(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=2, env={"FAKE_BODY": "restored"})
    ghost = dockyard.state_dir / "instances" / "ep-alltraffic-killed00"  # left by a killed server
    (ghost / "primary" / "model").mkdir(parents=True)
    await dockyard.restart()
    await dockyard.until(lambda: not ghost.exists())
    await dockyard.until(lambda: len(dockyard.fake.running) == 2)
    await dockyard.until(lambda: all(not c.exited for c in dockyard.fake.containers("ep")))
    ep = await dockyard.wait_status("ep", "InService")
    assert ep["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    resp = await dockyard.invoke("ep")
    while resp.status == 503:  # instances restarted but not yet published
        await asyncio.sleep(0.005)
        resp = await dockyard.invoke("ep")
    assert await resp.read() == b"restored"


async def test_container_limit_is_resource_limit_exceeded(dockyard: Dockyard) -> None:
    await dockyard.create_model("m")
    await dockyard.create_config("big", [{"VariantName": "AllTraffic", "ModelName": "m",
                                          "InitialInstanceCount": 201}])
    with pytest.raises(AwsError) as err:
        await dockyard.call("CreateEndpoint", EndpointName="ep", EndpointConfigName="big")
    assert err.value.code == "ResourceLimitExceeded"
    assert "needs 201 containers and 0 are already running" in err.value.message
    assert dockyard.fake.started == []


async def test_images_can_be_configured_per_image(dockyard: Dockyard) -> None:
    dockyard.fake.images["other:1"] = Behaviour(body="other image")
    await dockyard.deploy("ep", image="other:1")
    assert await (await dockyard.invoke("ep")).read() == b"other image"


async def _update_while_blue_answers(dockyard: Dockyard) -> tuple[str, list[Any], asyncio.Event, asyncio.Future[Any]]:
    """Endpoint ep on a "blue" instance, held answering one invocation, being updated to "green"
    (started); blue's id, its containers, what releases the invocation, and its answer."""
    await dockyard.deploy("ep", env={"FAKE_BODY": "blue"})
    (blue,) = dockyard.fake.running
    blue_containers = dockyard.fake.containers("ep")
    hold = asyncio.Event()
    for container in blue_containers:
        container.hold = hold
    in_flight = asyncio.ensure_future(dockyard.invoke("ep", b"in flight"))
    await dockyard.until(lambda: any(c.invocations for c in dockyard.fake.containers("ep")))

    await dockyard.create_model("green", env={"FAKE_BODY": "green"})
    await dockyard.create_config("green", [{"VariantName": "AllTraffic", "ModelName": "green"}])
    await dockyard.call("UpdateEndpoint", EndpointName="ep", EndpointConfigName="green")
    await dockyard.until(lambda: len(dockyard.fake.running) == 2)
    return blue, blue_containers, hold, in_flight


async def test_an_update_stops_an_old_instance_only_once_its_invocations_are_answered(dockyard: Dockyard) -> None:
    blue, blue_containers, hold, in_flight = await _update_while_blue_answers(dockyard)
    answer = await dockyard.invoke("ep")
    while await answer.read() != b"green":  # until the new route is published
        await asyncio.sleep(0.005)
        answer = await dockyard.invoke("ep")
    # New requests go to green; blue is out of rotation but not told to stop while it answers.
    assert not any(c.exited for c in blue_containers)
    assert (await dockyard.describe("ep"))["EndpointStatus"] == "Updating"

    hold.set()
    finished = await in_flight
    assert (finished.status, await finished.read()) == (200, b"blue")
    ep = await dockyard.wait_status("ep", "InService")
    assert ep["EndpointConfigName"] == "green"
    assert dockyard.fake.stopped == [blue] and blue not in dockyard.fake.running


async def test_a_delete_during_an_update_s_drain_stops_the_old_instance_too(dockyard: Dockyard) -> None:
    blue, _, hold, in_flight = await _update_while_blue_answers(dockyard)

    await dockyard.call("DeleteEndpoint", EndpointName="ep")
    await dockyard.wait_gone("ep")
    # The delete cancelled the update while blue was draining: blue is stopped all the same.
    assert blue in dockyard.fake.stopped and dockyard.fake.running == {}
    hold.set()
    await asyncio.gather(in_flight, return_exceptions=True)

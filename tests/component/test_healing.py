"""Endpoints heal by themselves and say so: dead instances are replaced, a replacement that fails
is retried with backoff until it works, ready/desired counts show on /metrics, a restarted server
answers 503 (never "not found") while instances come back, and shutdown drains."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from component_harness import IMAGE, Dockyard, error_of
from fake_runtime import Behaviour

from dockyard.cli.main import _status
from dockyard.control.healing import Backoff


def gauge(metrics: str, name: str, endpoint: str, variant: str = "AllTraffic") -> float:
    line = f'{name}{{endpoint="{endpoint}",variant="{variant}"}} '
    return float(next(row for row in metrics.splitlines() if row.startswith(line))[len(line):])


async def metrics_text(dockyard: Dockyard) -> str:
    assert dockyard.client is not None
    return await (await dockyard.client.get("/metrics")).text()


async def test_a_crashed_container_is_model_error_then_replaced(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", env={"FAKE_CRASH_AFTER": "1"})
    first = dockyard.fake.containers("ep")[0]
    assert (await dockyard.invoke("ep")).status == 200  # answered, then the container exits
    await dockyard.until(lambda: first.exited)
    await dockyard.until(lambda: len(dockyard.fake.containers("ep")) == 1 and dockyard.fake.containers("ep")[0] is not first)
    resp = await dockyard.invoke("ep")
    while resp.status == 503:  # the replacement started but is not published yet
        await asyncio.sleep(0.005)
        resp = await dockyard.invoke("ep")
    assert json.loads(await resp.read())["instance"] != first.instance_id


async def test_a_failing_replacement_is_retried_until_it_works(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    dockyard.fake.images[IMAGE] = Behaviour(ping_status=500)  # the cause: replacements fail
    dead = await dockyard.fake.kill("ep")
    starts = len(dockyard.fake.started)
    await dockyard.until(lambda: len(dockyard.fake.started) >= starts + 3)  # retried, not given up

    ep = await dockyard.describe("ep")
    assert ep["EndpointStatus"] == "InService"
    assert ep["FailureReason"].startswith("Replacing an instance failed: Container primary")
    text = await metrics_text(dockyard)
    assert gauge(text, "dockyard_variant_ready_instances", "ep") == 0
    assert gauge(text, "dockyard_variant_desired_instances", "ep") == 1
    assert dockyard.client is not None
    readiness = await (await dockyard.client.get("/_dockyard/endpoints")).json()
    last_exit = readiness["endpoints"]["ep"]["AllTraffic"].pop("last_exit")
    assert last_exit.endswith(f"container(s) primary of instance {dead.instance_id} was killed by SIGKILL")
    assert readiness == {"endpoints": {"ep": {"AllTraffic": {"ready": 0, "desired": 1, "nodes": []}}}}
    assert _status("InService", readiness["endpoints"]["ep"]) == "[yellow]InService (0/1 ready)[/]"
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (503, "ServiceUnavailable")
    assert "No instance of variant AllTraffic of endpoint ep is ready yet" in message

    dockyard.fake.images[IMAGE] = Behaviour(body="healed")  # the cause is fixed
    await dockyard.until(lambda: len(dockyard.fake.running) == 1)
    resp = await dockyard.invoke("ep")
    while resp.status == 503:
        await asyncio.sleep(0.005)
        resp = await dockyard.invoke("ep")
    assert await resp.read() == b"healed"
    assert gauge(await metrics_text(dockyard), "dockyard_variant_ready_instances", "ep") == 1


def test_backoff_doubles_to_the_cap_and_resets_after_a_quiet_period() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    assert backoff.next_try() == -math.inf  # the first replacement starts at once
    now, delays = 100.0, []
    for _ in range(7):
        backoff.attempted(now)
        delays.append(backoff.next_try() - now)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    backoff.whole(now + 29)
    assert backoff.attempts == 7  # whole, but not for long enough yet
    backoff.whole(now + 30)
    assert backoff.next_try() == -math.inf


async def test_after_a_restart_an_endpoint_answers_503_until_its_instances_are_back(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    gate = asyncio.Event()
    fake = type(dockyard.fake)(dockyard.fake.images)
    fake.gate = gate  # the restored instances start but do not pass /ping yet
    await dockyard.restart(fake)
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (503, "ServiceUnavailable")
    assert "No instance of variant AllTraffic of endpoint ep is ready yet" in message
    assert (await dockyard.describe("ep"))["EndpointStatus"] == "InService"
    gate.set()
    await dockyard.until(lambda: len(fake.running) == 1)
    resp = await dockyard.invoke("ep")
    while resp.status == 503:
        await asyncio.sleep(0.005)
        resp = await dockyard.invoke("ep")
    assert resp.status == 200


async def test_shutdown_drains_new_invocations_and_stops_every_instance(dockyard: Dockyard) -> None:
    await dockyard.deploy("a", instances=2)
    await dockyard.deploy("b", instances=3)
    assert len(dockyard.fake.running) == 5
    hold = asyncio.Event()
    for container in dockyard.fake.containers("a"):
        container.hold = hold
    in_flight = asyncio.ensure_future(dockyard.invoke("a", b"in flight"))
    await dockyard.until(lambda: any(c.invocations for c in dockyard.fake.containers("a")))

    assert dockyard.client is not None and dockyard.client.server.app is not None
    await dockyard.client.server.app.shutdown()  # what aiohttp runs once the listener is closed
    status, code, message = await error_of(await dockyard.invoke("a"))
    assert (status, code) == (503, "ServiceUnavailable")
    assert "No instance of variant AllTraffic of endpoint a is ready yet" in message
    hold.set()
    finished = await in_flight
    assert finished.status == 200
    assert json.loads(await finished.read())["body"] == "in flight"
    await dockyard.stop()
    assert dockyard.fake.running == {}
    assert sorted(dockyard.fake.stopped) == sorted(dockyard.fake.started)


@pytest.mark.parametrize("push", [True, False], ids=["reported", "found-by-the-periodic-check"])
async def test_an_exit_is_replaced_without_waiting_for_the_health_interval(dockyard: Dockyard, push: bool) -> None:
    """A runtime that reports exits gets its dead instance replaced at once, even with an hour
    between health checks; one that cannot still has it found by the periodic check."""
    await dockyard.stop()
    dockyard.overrides["health_interval"] = 3600.0 if push else 0.02
    dockyard.fake.push_exits = push
    await dockyard.start()
    await dockyard.deploy("ep")
    dead = await dockyard.fake.kill("ep")
    # No invocation meanwhile: a refused connection would ring the reconciler by itself.
    await dockyard.until(lambda: any(not c.exited for c in dockyard.fake.containers("ep")))
    resp = await dockyard.invoke("ep")
    while resp.status == 503:  # started, not yet published
        await asyncio.sleep(0.005)
        resp = await dockyard.invoke("ep")
    assert json.loads(await resp.read())["instance"] != dead.instance_id
    reason = (await dockyard.describe("ep"))["FailureReason"]
    assert reason.startswith("Instance replaced (")
    assert f"container(s) primary of instance {dead.instance_id} " + ("was killed by SIGKILL" if push else "exited") in reason
    log = (dockyard.state_dir / "logs" / "ep" / dead.instance_id / "primary.log").read_text()
    assert log.endswith(f"[dockyard] {reason.split('): ', 1)[1].rstrip('.')}; dockyard replaces the instance\n")


async def test_a_reported_exit_takes_the_instance_out_of_rotation_at_once(dockyard: Dockyard) -> None:
    """Before its replacement is even started, no request goes to the dead instance."""
    await dockyard.stop()
    dockyard.overrides["health_interval"] = 3600.0
    await dockyard.start()
    await dockyard.deploy("ep", instances=2)
    dockyard.fake.gate = asyncio.Event()  # replacements wait
    dead = await dockyard.fake.kill("ep")
    try:
        answers = [json.loads(await (await dockyard.invoke("ep")).read())["instance"] for _ in range(6)]
        assert dead.instance_id not in answers and len(answers) == 6
        readiness = await (await dockyard.client.get("/_dockyard/endpoints")).json()  # type: ignore[union-attr]
        assert readiness["endpoints"]["ep"]["AllTraffic"]["ready"] == 1
    finally:
        dockyard.fake.gate.set()
    await dockyard.until(lambda: len([c for c in dockyard.fake.containers("ep") if not c.exited]) == 2)

"""After a crash, the reconciler takes over the instances the runtime adopts (the docker runtime
finds them by their labels) for the InService variants they still match, and stops the others."""

from __future__ import annotations

import dataclasses

from component_harness import Dockyard
from fake_runtime import FakeRuntime


async def test_a_restarted_server_keeps_matching_leftovers_and_stops_the_others(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=2, env={"FAKE_BODY": "adopted"})
    (spec, _) = [i.spec for i in dockyard.fake.running.values()]
    # What a killed server leaves behind: two instances of the variant as deployed, one of another plan.
    engine = FakeRuntime(dockyard.fake.images)
    specs = [dataclasses.replace(spec, instance_id=f"ep-alltraffic-left{n}") for n in range(2)]
    specs.append(dataclasses.replace(spec, instance_id="ep-alltraffic-stale", plan_digest="an-older-plan"))
    leftovers = [await engine.start_instance(s) for s in specs]

    successor = FakeRuntime(dockyard.fake.images)
    successor.leftovers = leftovers
    await dockyard.restart(successor)
    await dockyard.until(lambda: successor.stopped == ["ep-alltraffic-stale"])
    assert sorted(successor.running) == ["ep-alltraffic-left0", "ep-alltraffic-left1"]
    assert successor.started == []  # nothing replaced: the two leftovers are the endpoint's instances
    ep = await dockyard.wait_status("ep", "InService")
    assert ep["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    resp = await dockyard.invoke("ep")
    assert resp.status == 200 and await resp.read() == b"adopted"


async def test_leftovers_beyond_the_instance_count_or_of_a_deleted_endpoint_are_stopped(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=1)
    (spec,) = [i.spec for i in dockyard.fake.running.values()]
    engine = FakeRuntime(dockyard.fake.images)
    leftovers = [await engine.start_instance(dataclasses.replace(spec, instance_id=f"ep-alltraffic-left{n}")) for n in range(2)]
    gone = dataclasses.replace(spec, instance_id="gone-alltraffic-left0", endpoint="gone")
    leftovers.append(await engine.start_instance(gone))

    successor = FakeRuntime(dockyard.fake.images)
    successor.leftovers = leftovers
    await dockyard.restart(successor)
    await dockyard.until(lambda: len(successor.stopped) == 2)
    assert sorted(successor.stopped) == ["ep-alltraffic-left1", "gone-alltraffic-left0"]
    assert sorted(successor.running) == ["ep-alltraffic-left0"] and successor.started == []

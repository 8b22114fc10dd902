"""Multi-model endpoints on fake containers: single-flight loads, LRU unloading on 507, the cache
setting, the load wait, and routing a model to one instance."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from component_harness import IMAGE, Dockyard, error_of

from dockyard.artifacts.package import make_model_tarball
from dockyard.gateway import multimodel
from dockyard.gateway.multimodel import model_name


def make_prefix(root: Path, count: int) -> Path:
    """``root/models/m<i>.tar.gz``, each holding a name.txt that says ``m<i>``."""
    prefix = root / "models"
    prefix.mkdir(parents=True)
    for i in range(count):
        source = root / f"src-m{i}"
        source.mkdir()
        (source / "name.txt").write_text(f"m{i}")
        make_model_tarball(source, prefix / f"m{i}.tar.gz")
    return prefix


async def deploy_mme(dockyard: Dockyard, tmp_path: Path, env: dict[str, str] | None = None, instances: int = 1,
                     cache: str = "Enabled", load_wait: float = 10.0, models: int = 6) -> Path:
    prefix = make_prefix(tmp_path, models)
    dockyard.overrides = {"allow_paths": (tmp_path,), "model_load_wait": load_wait}
    await dockyard.restart()
    await dockyard.call("CreateModel", ModelName="mme", PrimaryContainer={
        "Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": str(prefix), "Environment": env or {},
        "MultiModelConfig": {"ModelCacheSetting": cache},
    })
    await dockyard.create_config("mme", [{"VariantName": "AllTraffic", "ModelName": "mme",
                                          "InitialInstanceCount": instances}])
    await dockyard.call("CreateEndpoint", EndpointName="mme", EndpointConfigName="mme")
    await dockyard.wait_status("mme", "InService")
    return prefix


async def invoke(dockyard: Dockyard, target: str) -> dict[str, Any]:
    resp = await dockyard.invoke("mme", b"{}", **{"X-Amzn-SageMaker-Target-Model": target})
    assert resp.status == 200, await resp.text()
    return json.loads(await resp.read())


TARGET = "X-Amzn-SageMaker-Target-Model"


def calls(dockyard: Dockyard) -> list[tuple[str, str]]:
    return [c for container in dockyard.fake.containers("mme") for c in container.model_calls]


async def test_concurrent_first_requests_share_one_download_and_one_load(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path, env={"FAKE_LOAD_DELAY": "0.2"})
    answers = await asyncio.gather(*(invoke(dockyard, "m1.tar.gz") for _ in range(8)))
    assert [a["model"] for a in answers] == ["m1"] * 8
    assert calls(dockyard) == [("load", model_name("m1.tar.gz"))]
    # The container is invoked by model, with the TargetModel header passed on.
    assert answers[0]["headers"]["X-Amzn-SageMaker-Target-Model"] == "m1.tar.gz"


async def test_a_model_the_container_lost_is_loaded_again(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path)
    assert (await invoke(dockyard, "m1.tar.gz"))["model"] == "m1"
    (container,) = dockyard.fake.containers("mme")
    container.models.clear()  # restarted in place, or dropped it on its own
    resp = await dockyard.invoke("mme", b"{}", **{"X-Amzn-SageMaker-Target-Model": "m1.tar.gz"})
    assert resp.status == 424 and (await resp.json())["OriginalStatusCode"] == 404
    # Not a stale "loaded" for ever: the next invocation loads it again.
    assert (await invoke(dockyard, "m1.tar.gz"))["model"] == "m1"
    assert calls(dockyard) == [("load", model_name("m1.tar.gz"))] * 2


async def test_out_of_memory_unloads_the_least_recently_used_model(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path, env={"FAKE_MAX_MODELS": "2"})
    for target in ("m0.tar.gz", "m1.tar.gz", "m0.tar.gz", "m2.tar.gz"):
        await invoke(dockyard, target)
    # m1 was used least recently when m2 met a full container (507): m1 went, m0 stayed.
    (container,) = dockyard.fake.containers("mme")
    assert sorted(container.models.values()) == ["m0", "m2"]
    n = model_name
    assert calls(dockyard) == [("load", n("m0.tar.gz")), ("load", n("m1.tar.gz")), ("load", n("m2.tar.gz")),
                               ("unload", n("m1.tar.gz")), ("load", n("m2.tar.gz"))]
    # m1 comes back by unloading m0, now the least recently used.
    assert (await invoke(dockyard, "m1.tar.gz"))["model"] == "m1"
    assert sorted(container.models.values()) == ["m1", "m2"]


async def test_cache_disabled_unloads_after_each_invocation(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path, cache="Disabled")
    assert (await invoke(dockyard, "m3.tar.gz"))["model"] == "m3"
    assert (await invoke(dockyard, "m3.tar.gz"))["model"] == "m3"
    (container,) = dockyard.fake.containers("mme")
    # Unloaded after the answer (the client does not wait for it), and before the next load.
    await dockyard.until(lambda: container.models == {})
    assert [kind for kind, _ in calls(dockyard)] == ["load", "unload", "load", "unload"]


async def test_a_slow_load_answers_model_not_ready_and_carries_on(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path, env={"FAKE_LOAD_DELAY": "0.5"}, load_wait=0.05)
    resp = await dockyard.invoke("mme", b"{}", **{"X-Amzn-SageMaker-Target-Model": "m4.tar.gz"})
    status, code, message = await error_of(resp)
    assert (status, code) == (429, "ModelNotReadyException") and "m4.tar.gz" in message
    (container,) = dockyard.fake.containers("mme")
    await dockyard.until(lambda: bool(container.models))
    assert (await invoke(dockyard, "m4.tar.gz"))["model"] == "m4"
    assert calls(dockyard) == [("load", model_name("m4.tar.gz"))]


async def test_each_model_goes_to_one_instance(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path, instances=3, models=12)
    first = {f"m{i}": (await invoke(dockyard, f"m{i}.tar.gz"))["instance"] for i in range(12)}
    again = {f"m{i}": (await invoke(dockyard, f"m{i}.tar.gz"))["instance"] for i in range(12)}
    assert first == again
    assert len(set(first.values())) > 1  # spread over the instances, not all on one
    # Each model was loaded once, on its own instance only.
    assert sorted(name for kind, name in calls(dockyard) if kind == "load") == sorted(
        model_name(f"m{i}.tar.gz") for i in range(12))


@pytest.mark.parametrize(("target", "expected"), [
    ("missing.tar.gz", "Failed to download model data(bucket: local, key: "),
    ("../m1.tar.gz", "is not a relative path under the model data prefix"),
])
async def test_bad_targets_are_validation_errors(dockyard: Dockyard, tmp_path: Path, target: str, expected: str) -> None:
    await deploy_mme(dockyard, tmp_path)
    resp = await dockyard.invoke("mme", b"{}", **{"X-Amzn-SageMaker-Target-Model": target})
    status, code, message = await error_of(resp)
    assert (status, code) == (400, "ValidationError") and expected in message
    assert calls(dockyard) == []


async def test_models_are_unloaded_before_the_instance_memory_runs_out(dockyard: Dockyard, tmp_path: Path) -> None:
    # ml.m5.large has 8 GiB; each model takes 1 GiB; loading stops at 90 %: 7 models at most.
    gib = 1024**3
    await deploy_mme(dockyard, tmp_path, env={"FAKE_MODEL_MEMORY": str(gib)}, models=10)
    for i in range(10):
        assert (await invoke(dockyard, f"m{i}.tar.gz"))["model"] == f"m{i}"
    (container,) = dockyard.fake.containers("mme")
    assert sorted(container.models.values()) == [f"m{i}" for i in range(3, 10)]
    loaded, peak = 0, 0
    for kind, _ in container.model_calls:
        loaded += 1 if kind == "load" else -1
        peak = max(peak, loaded)
    assert peak == 7
    # Least recently used first, and never through a 507.
    assert [name for kind, name in container.model_calls if kind == "unload"] == [
        model_name(f"m{i}.tar.gz") for i in range(3)]


async def test_concurrent_first_loads_reserve_memory_before_any_model_is_measured(
        dockyard: Dockyard, tmp_path: Path) -> None:
    # Twelve first requests at once, for 1 GiB models on an 8 GiB instance: no model's memory is
    # known when they arrive, yet no more than 7 (90 %) may ever be in memory, loaded or loading.
    gib = 1024**3
    await deploy_mme(dockyard, tmp_path, env={"FAKE_MODEL_MEMORY": str(gib), "FAKE_LOAD_DELAY": "0.05"}, models=12)
    answers = await asyncio.gather(*(invoke(dockyard, f"m{i}.tar.gz") for i in range(12)))
    assert [a["model"] for a in answers] == [f"m{i}" for i in range(12)]
    (container,) = dockyard.fake.containers("mme")
    assert container.peak_models <= 7
    # The first load was measured alone: its growth is what ``dockyard stats --models`` shows.
    assert dockyard.client is not None
    stats = await (await dockyard.client.get("/_dockyard/endpoints/mme/stats")).json()
    measured = [m["memory_bytes"] for m in stats["models"] if m["memory_bytes"] is not None]
    assert measured and set(measured) == {gib}
    assert sum(m["loaded"] for m in stats["models"]) == len(container.models) <= 7


async def test_a_load_waits_while_every_loaded_model_is_in_use(
        dockyard: Dockyard, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Seven 1 GiB models fill an 8 GiB instance (90 %), and each is being invoked (held by the
    container): none can be unloaded. The eighth model's load waits until one is free instead of
    going over the memory (it did go ahead: 8 in memory, seen once as a flaky peak of 8 in the test
    above when its loaded models were still answering)."""
    caplog.set_level(logging.INFO, logger="dockyard.gateway.model_memory")
    gib = 1024**3
    await deploy_mme(dockyard, tmp_path, env={"FAKE_MODEL_MEMORY": str(gib)}, models=8)
    for i in range(7):
        await invoke(dockyard, f"m{i}.tar.gz")
    (container,) = dockyard.fake.containers("mme")
    container.hold = hold = asyncio.Event()
    try:
        busy = [asyncio.ensure_future(invoke(dockyard, f"m{i}.tar.gz")) for i in range(7)]
        await dockyard.until(lambda: container.invocations == 7)
        late = asyncio.ensure_future(invoke(dockyard, "m7.tar.gz"))
        # Either the load waits (logged) or, as before, it went ahead into a full container.
        await dockyard.until(lambda: "m7.tar.gz waits for room" in caplog.text
                             or ("load", model_name("m7.tar.gz")) in container.model_calls)
        assert ("load", model_name("m7.tar.gz")) not in container.model_calls
        assert container.peak_models == len(container.models) == 7
    finally:
        hold.set()
    answers = await asyncio.gather(*busy, late)
    assert [a["model"] for a in answers] == [f"m{i}" for i in range(8)]
    # Once invocations ended, one model made room: unloaded before the load, never 8 at once.
    unloads = [name for kind, name in container.model_calls if kind == "unload"]
    assert len(unloads) == 1 and unloads[0] in {model_name(f"m{i}.tar.gz") for i in range(7)}
    assert container.peak_models == len(container.models) == 7 and "m7" in container.models.values()


async def test_model_metrics_are_prometheus_series(dockyard: Dockyard, tmp_path: Path) -> None:
    await deploy_mme(dockyard, tmp_path)
    for target in ("m1.tar.gz", "m1.tar.gz", "m2.tar.gz"):
        await invoke(dockyard, target)
    assert dockyard.client is not None
    text = await (await dockyard.client.get("/metrics")).text()
    lines = set(text.splitlines())
    assert 'dockyard_model_cache_total{endpoint="mme",result="hit"} 1.0' in lines
    assert 'dockyard_model_cache_total{endpoint="mme",result="miss"} 2.0' in lines
    assert 'dockyard_model_invocations_total{endpoint="mme",model="m1.tar.gz"} 2.0' in lines
    assert 'dockyard_model_loading_seconds_count{endpoint="mme"} 2.0' in lines
    assert 'dockyard_model_downloading_seconds_count{endpoint="mme"} 2.0' in lines
    assert any(line.startswith('dockyard_loaded_models{endpoint="mme",instance="mme-') and line.endswith(" 2.0")
               for line in lines)


async def test_a_load_past_the_management_timeout_is_not_taken_for_loaded(
        dockyard: Dockyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load given up on keeps going in the container, which answers a second load 409 ("already
    registered"): until the container lists the model, it is not loaded (429, retried), never a
    404 "not loaded" from an invocation sent to it too soon."""
    monkeypatch.setattr(multimodel, "_MANAGEMENT_TIMEOUT", 0.2)
    await deploy_mme(dockyard, tmp_path, env={"FAKE_LOAD_DELAY": "1.0"})
    status, code, message = await error_of(await dockyard.invoke("mme", b"{}", **{TARGET: "m1.tar.gz"}))
    assert (status, code) == (424, "ModelError") and "did not answer POST" in message and "within 0.2 s" in message

    status, code, message = await error_of(await dockyard.invoke("mme", b"{}", **{TARGET: "m1.tar.gz"}))
    assert (status, code) == (429, "ModelNotReadyException")
    assert message == "Model m1.tar.gz is still loading in its container, after an earlier load outlasted 0.2 s; " \
                      "retry the request shortly."
    (container,) = dockyard.fake.containers("mme")
    await dockyard.until(lambda: model_name("m1.tar.gz") in container.models)  # the first load ends
    assert (await invoke(dockyard, "m1.tar.gz"))["model"] == "m1"
    assert calls(dockyard) == [("load", model_name("m1.tar.gz"))] * 3

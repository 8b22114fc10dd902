"""Serverless variants on a FakeRuntime: ServerlessConfig in and out of the control plane, scale
to zero after the idle period, a cold start on the next request, ThrottlingException beyond
MaxConcurrency, ProvisionedConcurrency kept warm, and the metrics that count them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from component_harness import IMAGE, AwsError, Dockyard, error_of

from dockyard.settings import Settings


class ServerlessDockyard(Dockyard):
    def settings(self) -> Settings:
        # Idle for a fifth of a second and a variant scales to zero.
        return replace(super().settings(), serverless_idle_seconds=0.2)


@pytest.fixture
async def dockyard(aiohttp_client: Any, tmp_path: Any, fake: Any) -> Any:
    server = ServerlessDockyard(aiohttp_client, tmp_path / "state", fake)
    await server.start()
    yield server
    await server.stop()


def serverless(name: str = "AllTraffic", model: str = "ep", **config: int) -> dict[str, Any]:
    return {"VariantName": name, "ModelName": model,
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2, **config}}


async def deploy(dockyard: Dockyard, *variants: dict[str, Any], env: dict[str, str] | None = None) -> None:
    await dockyard.create_model("ep", IMAGE, env)
    await dockyard.call("CreateEndpointConfig", EndpointConfigName="ep", ProductionVariants=list(variants or [serverless()]))
    await dockyard.call("CreateEndpoint", EndpointName="ep", EndpointConfigName="ep")
    await dockyard.wait_status("ep", "InService")


def running(dockyard: Dockyard, variant: str = "AllTraffic") -> int:
    return sum(1 for c in dockyard.fake.containers("ep") if c.instance_id.startswith(f"ep-{variant.lower()}-"))


def metric(text: str, name: str, variant: str = "AllTraffic") -> float:
    line = f'{name}{{endpoint="ep",variant="{variant}"}} '
    return float(next((row for row in text.splitlines() if row.startswith(line)), line + "0")[len(line):])


async def metrics_text(dockyard: Dockyard) -> str:
    assert dockyard.client is not None
    return await (await dockyard.client.get("/metrics")).text()


async def test_describe_reports_the_serverless_config(dockyard: Dockyard) -> None:
    await deploy(dockyard, serverless(ProvisionedConcurrency=1))
    variant = (await dockyard.describe("ep"))["ProductionVariants"][0]
    config = {"MemorySizeInMB": 2048, "MaxConcurrency": 2, "ProvisionedConcurrency": 1}
    assert variant["CurrentServerlessConfig"] == config
    assert variant["DesiredServerlessConfig"] == config
    assert "CurrentInstanceCount" not in variant and "DesiredInstanceCount" not in variant


async def test_idle_variant_scales_to_zero_and_the_next_request_cold_starts(dockyard: Dockyard) -> None:
    await deploy(dockyard)
    assert running(dockyard) == 1  # created warm: a broken model fails CreateEndpoint
    await dockyard.until(lambda: running(dockyard) == 0)
    assert metric(await metrics_text(dockyard), "dockyard_variant_desired_instances") == 0

    resp = await dockyard.invoke("ep")
    assert resp.status == 200
    assert resp.headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert json.loads(await resp.read())["instance"].startswith("ep-alltraffic-")
    text = await metrics_text(dockyard)
    assert metric(text, "dockyard_serverless_cold_starts_total") == 1
    assert metric(text, "dockyard_serverless_cold_start_seconds_count") == 1
    assert (await dockyard.describe("ep"))["EndpointStatus"] == "InService"

    await dockyard.until(lambda: running(dockyard) == 0)  # idle again: scaled to zero again
    assert (await dockyard.invoke("ep")).status == 200
    assert metric(await metrics_text(dockyard), "dockyard_serverless_cold_starts_total") == 2


async def test_requests_beyond_max_concurrency_are_throttled(dockyard: Dockyard) -> None:
    # A slow cold start holds the one slot while a second request arrives.
    await deploy(dockyard, serverless(MaxConcurrency=1), env={"FAKE_START_DELAY": "0.3"})
    await dockyard.until(lambda: running(dockyard) == 0)
    first = asyncio.ensure_future(dockyard.invoke("ep"))
    assert dockyard.client is not None
    await dockyard.until(lambda: len(dockyard.fake.started) == 2)  # the cold start is under way
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (429, "ThrottlingException")
    assert message == ("Variant AllTraffic of endpoint ep already has 1 requests in flight, its MaxConcurrency; "
                       "retry with backoff.")
    assert (await first).status == 200
    assert metric(await metrics_text(dockyard), "dockyard_serverless_throttled_total") == 1
    assert dockyard.client is not None
    stats = await (await dockyard.client.get("/_dockyard/endpoints/ep/stats")).json()
    assert stats["serverless"]["AllTraffic"]["throttled"] == 1
    assert stats["serverless"]["AllTraffic"]["cold_starts"] == 1


async def test_provisioned_concurrency_stays_warm_through_the_idle_period(dockyard: Dockyard) -> None:
    await deploy(dockyard, serverless("Warm", ProvisionedConcurrency=1), serverless("Cold"))
    await dockyard.until(lambda: running(dockyard, "Cold") == 0)  # the idle period has passed
    assert running(dockyard, "Warm") == 1
    warm = (await dockyard.invoke("ep", TargetVariant="Warm"))
    assert warm.status == 200
    assert metric(await metrics_text(dockyard), "dockyard_serverless_cold_starts_total", "Warm") == 0


async def test_serverless_update_config_changes_concurrency_without_a_restart(dockyard: Dockyard) -> None:
    await deploy(dockyard, serverless(ProvisionedConcurrency=1))
    started = len(dockyard.fake.started)
    await dockyard.call("UpdateEndpointWeightsAndCapacities", EndpointName="ep", DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"MaxConcurrency": 5}}])
    variant = (await dockyard.wait_status("ep", "InService"))["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5, "ProvisionedConcurrency": 1}
    assert len(dockyard.fake.started) == started

    with pytest.raises(AwsError) as info:
        await dockyard.call("UpdateEndpointWeightsAndCapacities", EndpointName="ep", DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"MaxConcurrency": 3, "ProvisionedConcurrency": 4}}])
    assert info.value.code == "ValidationException"
    assert "ProvisionedConcurrency (4) of production variant AllTraffic must be less than or equal to MaxConcurrency (3)" \
        in info.value.message
    with pytest.raises(AwsError) as info:
        await dockyard.call("UpdateEndpointWeightsAndCapacities", EndpointName="ep", DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}])
    assert "DesiredInstanceCount is not allowed for serverless variant AllTraffic" in info.value.message


async def test_a_config_with_provisioned_above_max_concurrency_is_refused(dockyard: Dockyard) -> None:
    await dockyard.create_model("ep", IMAGE)
    with pytest.raises(AwsError) as info:
        await dockyard.call("CreateEndpointConfig", EndpointConfigName="ep",
                            ProductionVariants=[serverless(MaxConcurrency=1, ProvisionedConcurrency=2)])
    assert info.value.code == "ValidationException"
    assert "must be less than or equal to MaxConcurrency (1)" in info.value.message


@pytest.mark.parametrize(("config", "expected"), [
    ({"MaxConcurrency": 0}, ("Value '0' at 'productionVariants.1.member.serverlessConfig.maxConcurrency' failed to "
                             "satisfy constraint: Member must have value greater than or equal to 1")),
    ({"MaxConcurrency": 201}, ("Value '201' at 'productionVariants.1.member.serverlessConfig.maxConcurrency' failed "
                               "to satisfy constraint: Member must have value less than or equal to 200")),
    ({"ProvisionedConcurrency": 0}, ("Value '0' at 'productionVariants.1.member.serverlessConfig."
                                     "provisionedConcurrency' failed to satisfy constraint: Member must have value "
                                     "greater than or equal to 1")),
])
async def test_concurrency_out_of_range_is_refused(dockyard: Dockyard, config: dict[str, int], expected: str) -> None:
    await dockyard.create_model("ep", IMAGE)
    with pytest.raises(AwsError) as info:
        await dockyard.call("CreateEndpointConfig", EndpointConfigName="ep", ProductionVariants=[serverless(**config)])
    assert (info.value.code, info.value.message) == ("ValidationException", f"1 validation error detected: {expected}")

"""The gateway in-process on the FakeRuntime: variant choice (weights, TargetVariant), round-robin
over instances, Direct and Serial, 503 while instances come back, the request and response
header allow-lists (asserted by what the container echoes), error mapping, failover from an
instance that refuses connections, streamed and chunked bodies."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from component_harness import IMAGE, WAIT_LIMIT, Dockyard, error_of
from fake_runtime import FakeRuntime
from prometheus_client.parser import text_string_to_metric_families


def echo(body: bytes) -> dict:
    return json.loads(body)


async def test_traffic_follows_weights_and_target_variant_overrides(dockyard: Dockyard) -> None:
    for name in ("a", "b", "off"):
        await dockyard.create_model(name, env={"FAKE_BODY": name})
    await dockyard.create_config("c", [
        {"VariantName": "A", "ModelName": "a", "InitialVariantWeight": 3.0},
        {"VariantName": "B", "ModelName": "b", "InitialVariantWeight": 1.0},
        {"VariantName": "Off", "ModelName": "off", "InitialVariantWeight": 0.0},
    ])
    await dockyard.call("CreateEndpoint", EndpointName="ep", EndpointConfigName="c")
    await dockyard.wait_status("ep", "InService")

    random.seed(7)  # the variant is drawn at random in proportion to its weight
    seen: Counter[str] = Counter()
    for _ in range(200):
        resp = await dockyard.invoke("ep")
        body = (await resp.read()).decode()
        assert resp.headers["x-Amzn-Invoked-Production-Variant"].lower() == body
        seen[body] += 1
    assert seen["off"] == 0
    assert 125 <= seen["a"] <= 175 and seen["a"] + seen["b"] == 200  # 3:1

    resp = await dockyard.invoke("ep", **{"X-Amzn-SageMaker-Target-Variant": "Off"})
    assert (await resp.read(), resp.headers["x-Amzn-Invoked-Production-Variant"]) == (b"off", "Off")
    status, code, message = await error_of(await dockyard.invoke("ep", **{"X-Amzn-SageMaker-Target-Variant": "C"}))
    assert (status, code) == (400, "ValidationError")
    assert message == "Variant C not found for endpoint ep; its variants are: A, B, Off."


async def test_instances_take_turns(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=3)
    served = [echo(await (await dockyard.invoke("ep")).read())["instance"] for _ in range(6)]
    assert len(set(served)) == 3
    assert served[:3] == served[3:]  # round-robin: the same order every lap


async def test_direct_reaches_the_named_container_only(dockyard: Dockyard) -> None:
    await dockyard.call("CreateModel", ModelName="m", InferenceExecutionConfig={"Mode": "Direct"}, Containers=[
        {"Image": IMAGE, "ContainerHostname": "first"}, {"Image": IMAGE, "ContainerHostname": "second"}])
    await dockyard.create_config("ep", [{"VariantName": "AllTraffic", "ModelName": "m"}])
    await dockyard.call("CreateEndpoint", EndpointName="ep", EndpointConfigName="ep")
    await dockyard.wait_status("ep", "InService")

    resp = await dockyard.invoke("ep", b"hi", **{"X-Amzn-SageMaker-Target-Container-Hostname": "second"})
    assert echo(await resp.read())["container"] == "second"
    first, second = dockyard.fake.containers("ep")
    assert (first.invocations, second.invocations) == (0, 1)

    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (400, "ValidationError")
    assert message == "Endpoint ep uses Direct invocation: set TargetContainerHostname to one of first, second."
    resp = await dockyard.invoke("ep", **{"X-Amzn-SageMaker-Target-Container-Hostname": "third"})
    assert (await error_of(resp))[2] == (
        "TargetContainerHostname third is not a container of endpoint ep; its containers are: first, second.")


async def test_serial_hands_each_answer_and_its_content_type_to_the_next(dockyard: Dockyard) -> None:
    await dockyard.call("CreateModel", ModelName="m", Containers=[
        {"Image": IMAGE, "ContainerHostname": "one", "Environment": {"FAKE_CONTENT_TYPE": "text/csv"}},
        {"Image": IMAGE, "ContainerHostname": "two"}])
    await dockyard.create_config("ep", [{"VariantName": "AllTraffic", "ModelName": "m"}])
    await dockyard.call("CreateEndpoint", EndpointName="ep", EndpointConfigName="ep")
    await dockyard.wait_status("ep", "InService")

    resp = await dockyard.invoke("ep", b"1,2", Accept="application/json",
                                 **{"X-Amzn-SageMaker-Custom-Attributes": "trace=9"})
    last = echo(await resp.read())
    first = echo(last["body"].encode())  # container two was sent container one's answer ...
    assert last["container"] == "two" and first["container"] == "one" and first["body"] == "1,2"
    assert last["headers"]["Content-Type"] == "text/csv"  # ... with its Content-Type
    for seen in (first, last):  # Accept and CustomAttributes go to every container
        assert seen["headers"]["Accept"] == "application/json"
        assert seen["headers"]["X-Amzn-SageMaker-Custom-Attributes"] == "trace=9"
    resp = await dockyard.invoke("ep", **{"X-Amzn-SageMaker-Target-Container-Hostname": "one"})
    assert (await error_of(resp))[2] == (
        "TargetContainerHostname is only allowed for endpoints with Direct invocation; endpoint ep uses Serial.")


async def test_503_while_instances_come_back_after_a_restart(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    fake = FakeRuntime(dockyard.fake.images)
    fake.gate = asyncio.Event()
    await dockyard.restart(fake)
    await dockyard.until(lambda: len(fake.started) == 1)  # restoring: known, nothing ready
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (503, "ServiceUnavailable")
    assert message == "No instance of variant AllTraffic of endpoint ep is ready yet; retry shortly."
    fake.gate.set()
    await serves(dockyard, lambda instances: len(instances) == 1)


async def serves(dockyard: Dockyard, enough: Callable[[set[str]], bool]) -> None:
    """Invoke until the instances that answered are ``enough`` (the reconciler acts meanwhile)."""
    async def poll() -> None:
        served: set[str] = set()
        while not enough(served):
            resp = await dockyard.invoke("ep")
            if resp.status == 200:
                served.add(echo(await resp.read())["instance"])
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), WAIT_LIMIT)


REQUEST_HEADERS = {
    "Content-Type": "text/csv",
    "Accept": "application/jsonlines",
    "X-Amzn-SageMaker-Custom-Attributes": "trace=1,tenant=a",
    "X-Amzn-SageMaker-Inference-Id": "inf-1",
    "X-Amzn-SageMaker-Session-Id": "NEW_SESSION",
    "X-Amzn-SageMaker-Enable-Explanations": "`true`",
}


async def test_containers_receive_exactly_the_invoke_endpoint_headers(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    resp = await dockyard.invoke("ep", b"1,2", **REQUEST_HEADERS, Cookie="session=secret",
                                 Authorization="AWS4-HMAC-SHA256 secret", **{"X-Forwarded-For": "10.0.0.1"})
    got = echo(await resp.read())["headers"]
    for name, value in REQUEST_HEADERS.items():
        assert got[name] == value
    sent_by_the_gateway = {"Host", "Content-Length", "Transfer-Encoding", "Connection"}
    assert set(got) - sent_by_the_gateway == set(REQUEST_HEADERS)


async def test_clients_receive_exactly_the_invoke_endpoint_response_headers(dockyard: Dockyard) -> None:
    returned = {
        "X-Amzn-SageMaker-Custom-Attributes": "answer=42",
        "X-Amzn-SageMaker-New-Session-Id": "sess-2; Expires=2030-01-01T00:00:00Z",
        "X-Amzn-SageMaker-Closed-Session-Id": "sess-1",
        "Content-Encoding": "identity",
    }
    await dockyard.deploy("ep", env={"FAKE_CONTENT_TYPE": "text/csv", "FAKE_RESPONSE_HEADERS": json.dumps(
        {**returned, "X-Internal-Token": "secret", "Set-Cookie": "a=b"})})
    resp = await dockyard.invoke("ep")
    assert resp.status == 200
    for name, value in returned.items():
        assert resp.headers[name] == value
    assert resp.headers["Content-Type"] == "text/csv"
    assert resp.headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert "X-Internal-Token" not in resp.headers and "Set-Cookie" not in resp.headers


@pytest.mark.parametrize(("status", "kind"), [(500, "server"), (415, "client")])
async def test_a_container_error_is_model_error_424(dockyard: Dockyard, status: int, kind: str) -> None:
    await dockyard.deploy("ep", env={"FAKE_STATUS": str(status), "FAKE_BODY": "no such input"})
    resp = await dockyard.invoke("ep")
    body = json.loads(await resp.read())
    assert resp.status == 424 and resp.headers["x-amzn-ErrorType"] == "ModelError:"
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/ep"
    assert body["message"] == (
        f'Received {kind} error ({status}) from primary with message "no such input". '
        f"See {arn} for more information.")
    assert (body["OriginalStatusCode"], body["OriginalMessage"], body["LogStreamArn"]) == (
        status, "no such input", arn)


async def test_an_unknown_endpoint_is_validation_error(dockyard: Dockyard) -> None:
    resp = await dockyard.invoke("ghost")
    assert resp.headers["x-amzn-ErrorType"] == "ValidationError:"
    assert await error_of(resp) == (400, "ValidationError", "Endpoint ghost of account 123456789012 not found.")


async def requests_counted(dockyard: Dockyard) -> dict[tuple[str, str, str], float]:
    assert dockyard.client is not None
    text = await (await dockyard.client.get("/metrics")).text()
    counted = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dockyard_invocations_total":
                counted[(sample.labels["endpoint"], sample.labels["variant"], sample.labels["status"])] = sample.value
    return counted


async def test_a_request_no_instance_could_take_is_counted_too(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    fake = FakeRuntime(dockyard.fake.images)
    fake.gate = asyncio.Event()
    await dockyard.restart(fake)
    await dockyard.until(lambda: len(fake.started) == 1)
    assert (await dockyard.invoke("ep")).status == 503
    assert await requests_counted(dockyard) == {("ep", "AllTraffic", "503"): 1.0}
    fake.gate.set()


async def test_requests_are_counted_once_by_status_and_dropped_with_the_endpoint(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    await dockyard.invoke("ep")
    await dockyard.invoke("ep", **{"X-Amzn-SageMaker-Target-Variant": "Nope"})  # no series per made-up name
    await dockyard.invoke("ghost")
    await dockyard.deploy("bad", env={"FAKE_STATUS": "503"})
    await dockyard.invoke("bad")
    assert await requests_counted(dockyard) == {
        ("ep", "AllTraffic", "200"): 1.0, ("ep", "", "400"): 1.0, ("bad", "AllTraffic", "424"): 1.0}
    await dockyard.call("DeleteEndpoint", EndpointName="ep")
    await dockyard.wait_gone("ep")
    assert await requests_counted(dockyard) == {("bad", "AllTraffic", "424"): 1.0}


async def close_port(dockyard: Dockyard, instance_id: str) -> None:
    """Make an instance refuse connections while its process looks alive to the reconciler."""
    victim = next(c for c in dockyard.fake.containers("ep") if c.instance_id == instance_id)
    runner, victim.runner = victim.runner, None
    assert runner is not None
    await runner.cleanup()


async def test_an_instance_that_refuses_connections_is_out_of_rotation_at_once(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=2)
    first = echo(await (await dockyard.invoke("ep")).read())["instance"]
    await close_port(dockyard, first)  # its turn comes next but one
    served = []
    for _ in range(6):
        resp = await dockyard.invoke("ep")
        assert resp.status == 200, await resp.read()
        served.append(echo(await resp.read())["instance"])
    assert first not in served  # retried once on the other instance, then skipped


async def test_failover_then_the_replacement_joins_the_rotation(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", instances=2)
    victim = await dockyard.fake.kill("ep")
    for _ in range(2):
        resp = await dockyard.invoke("ep")
        assert resp.status == 200 and echo(await resp.read())["instance"] != victim.instance_id
    await dockyard.until(lambda: len(dockyard.fake.started) == 3)
    replacement = dockyard.fake.started[2]
    await serves(dockyard, lambda instances: replacement in instances)
    assert victim.instance_id not in dockyard.fake.running


async def test_the_only_instance_refusing_is_model_error(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    await close_port(dockyard, dockyard.fake.started[0])
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (424, "ModelError")
    assert message.startswith("Received server error (0) from primary with message "
                              '"the container could not be reached: Cannot connect to 127.0.0.1:')


async def test_a_large_answer_streams_through_whole(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", env={"FAKE_BODY_BYTES": str(3 * 1024 * 1024)})
    resp = await dockyard.invoke("ep")
    assert resp.status == 200 and resp.content_length == 3 * 1024 * 1024
    assert await resp.read() == b"x" * (3 * 1024 * 1024)


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """dockyard's warnings and errors (not the fake containers' own server logs)."""
    return [r for r in caplog.records if r.name.startswith("dockyard") and r.levelno >= logging.WARNING]


async def test_a_container_dying_mid_answer_cuts_the_response_without_a_traceback(
    dockyard: Dockyard, caplog: pytest.LogCaptureFixture
) -> None:
    await dockyard.deploy("ep", env={"FAKE_BODY_BYTES": "1000000", "FAKE_CUT_AT": "300000"})
    assert dockyard.client is not None
    with caplog.at_level(logging.WARNING):
        resp = await dockyard.client.post("/endpoints/ep/invocations", data=b"{}")
        assert resp.status == 200  # the status line was sent before the container died
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    [warning] = ours(caplog)  # one line, no traceback
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert warning.getMessage().startswith(
        "invocation of ep cut off mid-response: Received server error (0) from primary with message")


async def test_a_client_leaving_mid_answer_ends_the_call_quietly(
    dockyard: Dockyard, caplog: pytest.LogCaptureFixture
) -> None:
    await dockyard.deploy("ep", env={"FAKE_BODY_BYTES": str(32 * 1024 * 1024)})
    assert dockyard.client is not None
    with caplog.at_level(logging.WARNING):
        resp = await dockyard.client.post("/endpoints/ep/invocations", data=b"{}")
        assert len(await resp.content.read(1024)) > 0
        resp.close()  # the client hangs up half way

        async def recorded() -> None:  # the container call is finished and recorded all the same
            while await container_calls(dockyard) != 1.0:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(recorded(), WAIT_LIMIT)
    assert [r for r in ours(caplog) if r.levelno >= logging.ERROR or r.exc_info] == []


async def container_calls(dockyard: Dockyard) -> float:
    assert dockyard.client is not None
    text = await (await dockyard.client.get("/metrics")).text()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "dockyard_container_invocations_total")


async def test_a_container_dying_before_its_body_starts_is_model_error(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep", env={"FAKE_BODY_BYTES": "1000000", "FAKE_CUT_AT": "0"})
    status, code, message = await error_of(await dockyard.invoke("ep"))
    assert (status, code) == (424, "ModelError")
    assert message.startswith("Received server error (0) from primary with message")


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
        await asyncio.sleep(0.01)  # pacing, so that the parts arrive as separate reads


async def test_a_chunked_body_is_read_to_its_end(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    assert dockyard.client is not None
    resp = await dockyard.client.post("/endpoints/ep/invocations", data=chunks(b"1,2\n", b"3,4\n", b"5,6\n"),
                                      headers={"Content-Type": "text/csv"})
    got = echo(await resp.read())
    assert got["body"] == "1,2\n3,4\n5,6\n"


async def test_a_chunked_body_over_the_limit_is_413(dockyard: Dockyard) -> None:
    await dockyard.deploy("ep")
    assert dockyard.client is not None
    mib = b"x" * (1024 * 1024)
    resp = await dockyard.client.post("/endpoints/ep/invocations", data=chunks(*[mib] * 7))
    assert await error_of(resp) == (413, "ValidationError", "HTTP content length exceeded 6291456 bytes.")
    assert dockyard.fake.containers("ep")[0].invocations == 0

"""InvokeEndpointWithResponseStream with boto3 against a real server: each chunk a container writes
reaches the client as its own PayloadPart before the container writes the next; failures before
the first byte are ModelError, after it a ModelStreamError event; Serial pipelines refuse;
Direct, TargetVariant, Accept, ContentType and CustomAttributes behave as in InvokeEndpoint; and a
server with credentials checks the signature of streaming requests too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from servers import Server

from e2e.deploy import create_endpoint, delete_all

ROOT = Path(__file__).resolve().parents[2]

# A BYOC container (a directory with an executable `serve`, run by the process runtime) that
# streams the tokens of its JSON request as chunks. With "wait_dir", it writes token k only once
# the client has created the file go-k there: the client does so on receiving token k-1, so a
# token held back anywhere between the container and the client stalls the stream (the container
# then writes "never-signalled" and stops).
STREAMING_SERVE = """
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "status" in request:
            body = request["message"].encode()
            self.send_response(request["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        if request.get("sse"):
            self.server_sent_events(request)
            return
        self.send_header("Content-Type", self.headers.get("Accept") or "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        attributes = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        if attributes is not None:
            self.send_header("X-Amzn-SageMaker-Custom-Attributes", "echo:" + attributes)
        self.end_headers()
        for k, token in enumerate(request["tokens"]):
            if k == request.get("die_after"):
                os._exit(3)
            if request.get("wait_dir") and k > 0 and not signalled(request["wait_dir"], k):
                self.chunk(b"never-signalled")
                break
            self.chunk(token.replace("$WHO", os.environ.get("WHO", "")).encode())
        self.wfile.write(b"0\\r\\n\\r\\n")
        self.wfile.flush()

    def server_sent_events(self, request):
        # text/event-stream as many servers write it: no length, no chunks; the body ends when
        # the connection closes.
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for k, token in enumerate(request["tokens"]):
            if k > 0 and not signalled(request["wait_dir"], k):
                break
            self.wfile.write(f"data: {token}\\n\\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def chunk(self, data):
        self.wfile.write(b"%x\\r\\n%b\\r\\n" % (len(data), data))
        self.wfile.flush()


def signalled(directory, k):
    for _ in range(600):  # a fail-safe only: the client signals as soon as it reads
        if os.path.exists(os.path.join(directory, f"go-{k}")):
            return True
        time.sleep(0.05)
    return False


ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))), Handler).serve_forever()
"""


def streaming_container(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    serve = directory / "serve"
    serve.write_text(f"#!{sys.executable}\n" + textwrap.dedent(STREAMING_SERVE))
    serve.chmod(0o755)
    return str(directory)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return streaming_container(tmp_path_factory.mktemp("streaming-byoc"))


@pytest.fixture(scope="module")
def streamer(sm: Any, image: str) -> str:
    create_endpoint(sm, "streamer", {"PrimaryContainer": {"Image": image}})
    return "streamer"


def stream(rt: Any, endpoint: str, request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return rt.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps(request), **kwargs
    )


def parts(resp: dict[str, Any]) -> Iterator[bytes]:
    for event in resp["Body"]:
        assert list(event) == ["PayloadPart"]
        yield event["PayloadPart"]["Bytes"]


def test_each_chunk_reaches_the_client_before_the_container_writes_the_next(rt, streamer, tmp_path):
    tokens = ["Once", " upon", " a", " time"]
    resp = stream(rt, streamer, {"tokens": tokens, "wait_dir": str(tmp_path)})
    received = []
    for part in parts(resp):
        received.append(part.decode())
        # Only now may the container write the next token.
        (tmp_path / f"go-{len(received)}").touch()
    assert received == tokens  # one PayloadPart per chunk, none held back
    assert resp["ContentType"] == "text/plain"
    assert resp["InvokedProductionVariant"] == "AllTraffic"


def test_server_sent_events_stream_event_by_event(rt, streamer, tmp_path):
    tokens = ["alpha", "beta", "gamma"]
    resp = stream(rt, streamer, {"tokens": tokens, "wait_dir": str(tmp_path), "sse": True})
    received = []
    for part in parts(resp):
        received.append(part.decode())
        (tmp_path / f"go-{len(received)}").touch()
    assert received == [f"data: {token}\n\n" for token in tokens]
    assert resp["ContentType"] == "text/event-stream"


def test_accept_content_type_and_custom_attributes(rt, streamer):
    resp = stream(rt, streamer, {"tokens": ["{}"]}, Accept="application/jsonlines", CustomAttributes="trace=7")
    assert b"".join(parts(resp)) == b"{}"
    assert resp["ContentType"] == "application/jsonlines"  # the container's, from X-Amzn-SageMaker-Accept
    assert resp["CustomAttributes"] == "echo:trace=7"


def test_container_failure_before_the_first_byte_is_a_model_error(rt, streamer):
    with pytest.raises(ClientError) as info:
        stream(rt, streamer, {"status": 400, "message": "bad input"})
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["Error"]["Code"] == "ModelError"
    assert (error["OriginalStatusCode"], error["OriginalMessage"]) == (400, "bad input")


def test_container_dying_mid_stream_ends_it_with_model_stream_error(sm, rt, image):
    # Its own endpoint: the container is gone afterwards, until the reconciler replaces it.
    create_endpoint(sm, "stream-dies", {"PrimaryContainer": {"Image": image}})
    resp = stream(rt, "stream-dies", {"tokens": ["a", "b", "c"], "die_after": 2})
    received = []
    with pytest.raises(EventStreamError) as info:
        for part in parts(resp):
            received.append(part)  # noqa: PERF402 (list() would lose the parts before the error)
    assert b"".join(received) == b"ab"
    error = info.value.response["Error"]
    assert error["Code"] == "ModelStreamError"
    assert "closed the connection before it finished answering" in error["Message"]


def test_model_stream_error_carries_its_error_code(sm, server, image):
    # boto3 keeps only the code and message of an exception event: its ErrorCode is read off the
    # wire with botocore's own decoder.
    create_endpoint(sm, "stream-dies-raw", {"PrimaryContainer": {"Image": image}})
    request = urllib.request.Request(
        f"{server.url}/endpoints/stream-dies-raw/invocations-response-stream",
        data=json.dumps({"tokens": ["a", "b"], "die_after": 1}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as resp:
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        buffer = EventStreamBuffer()
        buffer.add_data(resp.read())
    payload, failure = list(buffer)
    assert (payload.headers[":event-type"], payload.payload) == ("PayloadPart", b"a")
    assert failure.headers[":message-type"] == "exception"
    assert failure.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(failure.payload)["ErrorCode"] == "StreamBroken"


def test_serial_pipeline_refuses_streaming(sm, rt, image):
    containers = [{"Image": image, "ContainerHostname": h} for h in ("one", "two")]
    create_endpoint(sm, "stream-serial", {"Containers": containers})
    with pytest.raises(ClientError) as info:
        stream(rt, "stream-serial", {"tokens": ["x"]})
    error = info.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (400, "ValidationError")
    assert "response streaming is not supported for inference pipelines" in error["Error"]["Message"]
    delete_all(sm, "stream-serial")


def test_direct_by_target_container_hostname(sm, rt, image):
    containers = [{"Image": image, "ContainerHostname": h, "Environment": {"WHO": h}} for h in ("left", "right")]
    create_endpoint(sm, "stream-direct", {"Containers": containers, "InferenceExecutionConfig": {"Mode": "Direct"}})
    for host in ("right", "left"):
        resp = stream(rt, "stream-direct", {"tokens": ["from ", "$WHO"]}, TargetContainerHostname=host)
        assert b"".join(parts(resp)) == f"from {host}".encode()
    with pytest.raises(ClientError) as info:
        stream(rt, "stream-direct", {"tokens": ["x"]})
    assert "set TargetContainerHostname to one of left, right" in info.value.response["Error"]["Message"]
    delete_all(sm, "stream-direct")


def test_target_variant(sm, rt, image):
    sm.create_model(ModelName="stream-v", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
                    PrimaryContainer={"Image": image})
    sm.create_endpoint_config(EndpointConfigName="stream-v", ProductionVariants=[
        {"VariantName": name, "ModelName": "stream-v", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": weight} for name, weight in (("Main", 1.0), ("Shadowless", 0.0))])
    sm.create_endpoint(EndpointName="stream-v", EndpointConfigName="stream-v")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="stream-v", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    resp = stream(rt, "stream-v", {"tokens": ["hi"]}, TargetVariant="Shadowless")
    assert (list(parts(resp)), resp["InvokedProductionVariant"]) == ([b"hi"], "Shadowless")
    delete_all(sm, "stream-v")


def test_payload_limit_applies(rt, streamer):
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint_with_response_stream(EndpointName=streamer, Body=b"x" * (6 * 1024 * 1024 + 1))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[Server]:
    """A server with credentials and a short invocation timeout, serving the streaming container."""
    root = tmp_path_factory.mktemp("guarded")
    srv = Server(root / "state", root / "server.log", {"DOCKYARD_INVOCATION_TIMEOUT": "2"},
                 credentials={"AKIDSTREAM": "s3cret"}).start()
    create_endpoint(srv.client("sagemaker"), "guarded", {"PrimaryContainer": {"Image": image}})
    yield srv
    srv.stop()


def test_streaming_requests_are_authenticated(guarded):
    rt = guarded.client("sagemaker-runtime", retries={"max_attempts": 1})
    assert list(parts(stream(rt, "guarded", {"tokens": ["ok"]}))) == [b"ok"]
    forger = guarded.client("sagemaker-runtime", signed_by=("AKIDSTREAM", "wrong"), retries={"max_attempts": 1})
    with pytest.raises(ClientError) as info:
        stream(forger, "guarded", {"tokens": ["no"]})
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_a_stream_past_the_invocation_timeout_ends_with_model_invocation_time_exceeded(guarded, tmp_path):
    rt = guarded.client("sagemaker-runtime", retries={"max_attempts": 1})
    # Never signalled, the container stalls after its first token, past the 2 s timeout.
    resp = stream(rt, "guarded", {"tokens": ["first", "never"], "wait_dir": str(tmp_path)})
    received = []
    with pytest.raises(EventStreamError) as info:
        for part in parts(resp):
            received.append(part)  # noqa: PERF402 (list() would lose the parts before the error)
    assert received == [b"first"]
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "timed out while waiting for a response from container" in info.value.response["Error"]["Message"]
    # boto3 keeps no ErrorCode (see above): the server's log names the one it sent.
    assert "the stream of guarded was broken off by its container (ModelInvocationTimeExceeded)" in guarded.log()


def test_streaming_example(server):
    out = subprocess.run([sys.executable, "examples/streaming/stream_tokens.py"], env={**os.environ, "DOCKYARD_URL": server.url},
                         capture_output=True, text=True, timeout=180, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(":", 1) for line in out.stdout.strip().splitlines())
    # The Markov chain generated the same words on the endpoint, streamed or whole, as here.
    assert lines["streamed"] == lines["invoke_endpoint"] == lines["local"]
    assert len(lines["local"].split()) == 30
    assert int(lines["parts"]) == 30  # one event per token, as the model server wrote them


def test_an_open_stream_holds_its_serverless_concurrency_slot(sm, rt, image, tmp_path):
    sm.create_model(ModelName="stream-serverless", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
                    PrimaryContainer={"Image": image})
    sm.create_endpoint_config(EndpointConfigName="stream-serverless", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "stream-serverless",
        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}}])
    sm.create_endpoint(EndpointName="stream-serverless", EndpointConfigName="stream-serverless")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="stream-serverless",
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    open_stream = parts(stream(rt, "stream-serverless", {"tokens": ["one", "two"], "wait_dir": str(tmp_path)}))
    assert next(open_stream) == b"one"
    # The first stream is still open (its container waits for go-1): it is the one in flight.
    with pytest.raises(ClientError) as info:
        stream(rt, "stream-serverless", {"tokens": ["x"]})
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    (tmp_path / "go-1").touch()
    assert list(open_stream) == [b"two"]
    # Ended, it gave its slot back.
    assert list(parts(stream(rt, "stream-serverless", {"tokens": ["again"]}))) == [b"again"]
    delete_all(sm, "stream-serverless")

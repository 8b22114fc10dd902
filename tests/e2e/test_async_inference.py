"""Asynchronous inference through boto3 against a real server, with S3 and SNS served by moto on a
loopback port: results and failures land where InvokeEndpointAsync said they would, TTL expiry,
SNS notifications (read back from an SQS queue subscribed in moto), and a SIGKILLed server that
finishes every accepted request exactly once after a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from servers import Server

from dockyard.runtime.ports import free_port
from e2e.deploy import FAST_WAIT, sigkill_server
from e2e.models import SKLEARN_URI, package

# A model that echoes its input, fails on "fail", and sleeps on "sleep <seconds>".
ECHO = """
import json
import subprocess
import sys
import time

def model_fn(model_dir):
    return "echo"

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    if text.startswith("fail"):
        raise ValueError("asked to fail")
    if text.startswith("sleep"):
        time.sleep(float(text.split()[1]))
    return json.dumps({"echo": text, "content_type": content_type, "accept": accept}), "application/json"
"""
BUCKET = "async"


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def aws(moto_url):
    clients = {name: boto3.client(name, endpoint_url=moto_url, region_name="us-east-1") for name in ("s3", "sns", "sqs")}
    clients["s3"].create_bucket(Bucket=BUCKET)
    return clients


def start(tmp_path, moto_url, state=None, **env: str) -> Server:
    env |= {"AWS_ENDPOINT_URL_S3": moto_url, "AWS_ENDPOINT_URL_SNS": moto_url}
    return Server(state or tmp_path / "state", tmp_path / f"server-{time.monotonic_ns()}.log", env).start()


def deploy(sm, name: str, model_data: str, async_config: dict[str, Any], wait: bool = True, **env: str) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                    PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": model_data, "Environment": env})
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
        AsyncInferenceConfig=async_config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)


def put_input(s3, key: str, body: bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def wait_object(s3, uri: str, timeout: float = 90.0) -> bytes:
    key = uri.removeprefix(f"s3://{BUCKET}/")
    deadline = time.monotonic() + timeout
    while True:
        try:
            return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except ClientError:
            assert time.monotonic() < deadline, f"{uri} never appeared"
            time.sleep(0.2)


def exists(s3, uri: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))
        return True
    except ClientError:
        return False


def validation_error(call: Any, **params: Any) -> str:
    """The message of the ValidationError ``call(**params)`` must raise."""
    with pytest.raises(ClientError) as exc:
        call(**params)
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    return exc.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def model_data(aws, tmp_path_factory) -> str:
    tarball = package(tmp_path_factory.mktemp("echo"), inference_py=ECHO)
    aws["s3"].upload_file(str(tarball), BUCKET, "models/echo.tar.gz")
    return f"s3://{BUCKET}/models/echo.tar.gz"


def test_results_failures_and_notifications(tmp_path, moto_url, aws, model_data):
    s3, sns, sqs = aws["s3"], aws["sns"], aws["sqs"]
    success = sns.create_topic(Name="async-success")["TopicArn"]
    error = sns.create_topic(Name="async-error")["TopicArn"]
    queue = sqs.create_queue(QueueName="async-notes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for topic in (success, error):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    config = {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/out", "S3FailurePath": f"s3://{BUCKET}/failed",
            "NotificationConfig": {"SuccessTopic": success, "ErrorTopic": error,
                                   "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"]},
        },
    }
    server = start(tmp_path, moto_url)
    try:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        deploy(sm, "async-echo", model_data, config)
        assert sm.describe_endpoint_config(EndpointConfigName="async-echo")["AsyncInferenceConfig"] == config
        assert sm.describe_endpoint(EndpointName="async-echo")["AsyncInferenceConfig"] == config

        ok = rt.invoke_endpoint_async(
            EndpointName="async-echo", InputLocation=put_input(s3, "in/ok.csv", b"1,2,3"),
            ContentType="text/csv", Accept="application/json", InferenceId="my-ok",
            S3OutputPathExtension="daily", Filename="ok.out",
        )
        assert ok["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert ok["InferenceId"] == "my-ok"
        assert ok["OutputLocation"] == f"s3://{BUCKET}/out/daily/ok.out"
        assert ok["FailureLocation"] == f"s3://{BUCKET}/failed/daily/ok.out-error.out"
        assert json.loads(wait_object(s3, ok["OutputLocation"])) == {
            "echo": "1,2,3", "content_type": "text/csv", "accept": "application/json"}

        bad = rt.invoke_endpoint_async(EndpointName="async-echo", InputLocation=put_input(s3, "in/bad", b"fail"))
        assert bad["OutputLocation"].startswith(f"s3://{BUCKET}/out/") and bad["OutputLocation"].endswith(".out")
        reason = wait_object(s3, bad["FailureLocation"]).decode()
        assert "asked to fail" in reason and "(500)" in reason
        assert not exists(s3, bad["OutputLocation"])

        missing = rt.invoke_endpoint_async(EndpointName="async-echo", InputLocation=f"s3://{BUCKET}/in/none")
        assert f"s3://{BUCKET}/in/none" in wait_object(s3, missing["FailureLocation"]).decode()

        slow = rt.invoke_endpoint_async(EndpointName="async-echo", InputLocation=put_input(s3, "in/slow", b"sleep 3"),
                                        InvocationTimeoutSeconds=1)
        assert "InvocationTimeoutSeconds of 1 seconds" in wait_object(s3, slow["FailureLocation"]).decode()

        notes = {}
        deadline = time.monotonic() + 30
        while len(notes) < 4 and time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                note = json.loads(m["Body"])
                notes[note["inferenceId"]] = note
        done = notes["my-ok"]
        assert done["invocationStatus"] == "Completed"
        assert done["eventSource"] == "aws:sagemaker" and done["eventVersion"] == "1.0"
        assert done["awsRegion"] == "us-east-1"
        assert done["requestParameters"] == {"endpointName": "async-echo", "inputLocation": f"s3://{BUCKET}/in/ok.csv",
                                             "contentType": "text/csv", "accept": "application/json"}
        assert done["responseParameters"] == {"contentType": "application/json", "outputLocation": ok["OutputLocation"]}
        assert json.loads(done["responseBody"]["content"])["echo"] == "1,2,3"
        assert done["receivedTime"] <= done["eventTime"] and done["eventTime"].endswith("Z")
        failed = notes[bad["InferenceId"]]
        assert failed["invocationStatus"] == "Failed"
        assert failed["responseParameters"]["failureLocation"] == bad["FailureLocation"]
        assert "asked to fail" in failed["failureReason"]
        assert "responseBody" not in failed  # IncludeInferenceResponseIn names only the success topic

        # The other API of each kind is refused, as SageMaker does.
        assert "InvokeEndpointAsync" in validation_error(
            rt.invoke_endpoint, EndpointName="async-echo", ContentType="text/csv", Body=b"1")
        assert "InvokeEndpointAsync" in validation_error(
            rt.invoke_endpoint_with_response_stream, EndpointName="async-echo", ContentType="text/csv", Body=b"1")
        unchecked = server.client("sagemaker-runtime", parameter_validation=False)
        assert "RequestTTLSeconds" in validation_error(
            unchecked.invoke_endpoint_async, EndpointName="async-echo", InputLocation="s3://a/b", RequestTTLSeconds=10)
    finally:
        server.stop()


def test_ttl_expiry_and_a_realtime_endpoint_refusing_async(tmp_path, moto_url, aws, model_data):
    s3 = aws["s3"]
    # TTLs are at least 60 s: the container and the gateway must let a request run longer.
    server = start(tmp_path, moto_url, DOCKYARD_INVOCATION_TIMEOUT="120")
    try:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        # One slot: the first request holds it past the second one's TTL.
        deploy(sm, "async-ttl", model_data, {"ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
                                             "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/ttl"}},
               SAGEMAKER_MODEL_SERVER_TIMEOUT="120")
        slow = rt.invoke_endpoint_async(EndpointName="async-ttl", InputLocation=put_input(s3, "in/slow", b"sleep 62"))
        late = rt.invoke_endpoint_async(EndpointName="async-ttl", InputLocation=put_input(s3, "in/late", b"late"),
                                        RequestTTLSeconds=60)
        stats = json.loads(get(server, "/_dockyard/endpoints/async-ttl/stats"))["backlog"]
        assert stats["ApproximateBacklogSize"] == 2 and stats["HasBacklogWithoutCapacity"] == 0
        assert stats["ApproximateBacklogSizePerInstance"] == 2 and stats["ApproximateAgeOfOldestRequest"] >= 0
        shown = subprocess.run([sys.executable, "-m", "dockyard", "stats", "--endpoint-url", server.url, "async-ttl"],
                               capture_output=True, text=True, check=True).stdout
        assert "Asynchronous inference" in shown and "Backlog" in shown
        # Without S3FailurePath, failures go beside the results.
        assert late["FailureLocation"].startswith(f"s3://{BUCKET}/ttl/")
        assert "TTL" in wait_object(s3, late["FailureLocation"], timeout=120).decode()
        assert not exists(s3, late["OutputLocation"])
        assert json.loads(wait_object(s3, slow["OutputLocation"], timeout=120))["echo"] == "sleep 62"

        sm.create_model(ModelName="rt", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                        PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": model_data})
        sm.create_endpoint_config(EndpointConfigName="rt", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "rt", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName="rt", EndpointConfigName="rt")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="rt", WaiterConfig=FAST_WAIT)
        assert "AsyncInferenceConfig" in validation_error(
            rt.invoke_endpoint_async, EndpointName="rt", InputLocation=f"s3://{BUCKET}/in/late")
    finally:
        server.stop()


def test_sigkill_and_restart_finishes_every_request_exactly_once(tmp_path, moto_url, aws, model_data):
    s3 = aws["s3"]
    server = start(tmp_path, moto_url)
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    deploy(sm, "async-crash", model_data, {"ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
                                           "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/crash"}})
    accepted = [
        rt.invoke_endpoint_async(EndpointName="async-crash", InputLocation=put_input(s3, f"in/crash-{i}", f"sleep 1 #{i}".encode()))
        for i in range(8)
    ]
    # Some have finished, some are running, the rest wait: kill the server now.
    wait_object(s3, accepted[0]["OutputLocation"])
    first_done = {a["OutputLocation"]: s3.head_object(Bucket=BUCKET, Key=a["OutputLocation"].removeprefix(f"s3://{BUCKET}/"))["LastModified"]
                  for a in accepted if exists(s3, a["OutputLocation"])}
    assert len(first_done) < len(accepted)
    sigkill_server(server, str(server.state_dir.resolve()))
    server = start(tmp_path, moto_url, state=server.state_dir)
    try:
        for i, a in enumerate(accepted):
            assert json.loads(wait_object(s3, a["OutputLocation"], timeout=120))["echo"] == f"sleep 1 #{i}"
            assert not exists(s3, a["FailureLocation"])
        # What was written before the crash was not written again.
        for location, modified in first_done.items():
            key = location.removeprefix(f"s3://{BUCKET}/")
            assert s3.head_object(Bucket=BUCKET, Key=key)["LastModified"] == modified
        # Nothing is left in the queue.
        sm2 = server.client("sagemaker")
        assert sm2.describe_endpoint(EndpointName="async-crash")["EndpointStatus"] == "InService"
        metrics = get(server, "/metrics")
        assert 'dockyard_async_backlog_size{endpoint="async-crash"} 0.0' in metrics
    finally:
        server.stop()


def get(server: Server, path: str) -> str:
    with urllib.request.urlopen(f"{server.url}{path}") as resp:
        return resp.read().decode()


def test_file_locations_as_local_extension(tmp_path, moto_url, model_data):
    server = start(tmp_path, moto_url)
    try:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        out = tmp_path / "results"
        deploy(sm, "async-files", model_data, {"OutputConfig": {"S3OutputPath": out.as_uri()}})
        (tmp_path / "input.csv").write_text("4,5,6")
        ok = rt.invoke_endpoint_async(EndpointName="async-files", InputLocation=(tmp_path / "input.csv").as_uri(),
                                      ContentType="text/csv", Filename="answer.json")
        assert ok["OutputLocation"] == (out / "answer.json").as_uri()
        deadline = time.monotonic() + 60
        while not (out / "answer.json").exists():
            assert time.monotonic() < deadline, "the result never appeared"
            time.sleep(0.2)
        assert json.loads((out / "answer.json").read_text())["echo"] == "4,5,6"
        # A 2.5 MiB input streams to the container in 1 MiB chunks; its answer streams back.
        big = ",".join(str(i % 10) for i in range(1_310_720))
        (tmp_path / "big.csv").write_text(big)
        large = rt.invoke_endpoint_async(EndpointName="async-files", InputLocation=(tmp_path / "big.csv").as_uri(),
                                         ContentType="text/csv")
        result = out / large["OutputLocation"].rsplit("/", 1)[1]
        while not result.exists():
            assert time.monotonic() < deadline + 60, "the large result never appeared"
            time.sleep(0.2)
        assert json.loads(result.read_text())["echo"] == big
        # Outside the server's allowed local roots, an input is refused: the reason says why.
        refused = rt.invoke_endpoint_async(EndpointName="async-files", InputLocation="file:///etc/hostname")
        failure = out / refused["FailureLocation"].rsplit("/", 1)[1]
        while not failure.exists():
            assert time.monotonic() < deadline, "the failure never appeared"
            time.sleep(0.2)
        assert "/etc/hostname" in failure.read_text() and "allow" in failure.read_text()

        # Endpoint configs SageMaker refuses: no S3OutputPath; a serverless variant. And https://
        # output paths, which botocore allows but dockyard does not write to.
        variant = {"VariantName": "v", "ModelName": "async-files", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        for name, variants, output, expected in (
            ("no-output", [variant], {}, "S3OutputPath is required"),
            ("https-output", [variant], {"S3OutputPath": f"https://{BUCKET}.s3.amazonaws.com/out"},
             f"S3OutputPath https://{BUCKET}.s3.amazonaws.com/out: dockyard writes asynchronous results to s3://"),
            ("https-failure", [variant], {"S3OutputPath": out.as_uri(), "S3FailurePath": f"https://s3.amazonaws.com/{BUCKET}/f"},
             "S3FailurePath https://"),
            ("unparsable-output", [variant], {"S3OutputPath": "s3://[::1/out"},
             "AsyncInferenceConfig.OutputConfig.S3OutputPath s3://[::1/out does not parse as a URL (Invalid IPv6 URL)."),
            ("serverless", [{"VariantName": "v", "ModelName": "async-files",
                             "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}],
             {"S3OutputPath": out.as_uri()}, "serverless"),
        ):
            with pytest.raises(ClientError) as exc:
                sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants,
                                          AsyncInferenceConfig={"OutputConfig": output})
            assert exc.value.response["Error"]["Code"] == "ValidationException"
            assert expected in exc.value.response["Error"]["Message"]
    finally:
        server.stop()


def test_https_input_locations_name_s3_objects(tmp_path, moto_url, aws, model_data):
    """An https:// InputLocation naming an S3 object is read through the server's S3 client (here
    moto's, on loopback): the configured endpoint's path-style URL and AWS's own URL shapes; any
    other https:// URL is a ValidationError and nothing is queued."""
    s3 = aws["s3"]
    server = start(tmp_path, moto_url)
    try:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        deploy(sm, "async-https", model_data, {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/https-out"}})
        endpoint = moto_url.removeprefix("http://")
        refused = {
            "https://example.com/async/in/x": "example.com is not an S3 endpoint",
            f"https://{endpoint.rsplit(':', 1)[0]}:1/{BUCKET}/in/x": "is not an S3 endpoint",
            f"https://{endpoint}/{BUCKET}/in/x?X-Amz-Signature=abc": "query string (a presigned URL?)",
            f"https://{BUCKET}.s3.us-east-1.amazonaws.com/": "no object key",
        }
        for url, reason in refused.items():
            message = validation_error(rt.invoke_endpoint_async, EndpointName="async-https", InputLocation=url)
            assert message.startswith(f"InputLocation {url} is not an S3 object URL: ") and reason in message
            assert f"https://{endpoint}/BUCKET/KEY on the configured S3 endpoint" in message
        # Not a URL at all (an unclosed IPv6 bracket passes botocore's pattern): the reason, not an InternalFailure.
        assert validation_error(rt.invoke_endpoint_async, EndpointName="async-https", InputLocation="https://[::1/in") == \
            "InputLocation https://[::1/in does not parse as a URL (Invalid IPv6 URL)"
        # http:// is not in botocore's pattern at all.
        unchecked = server.client("sagemaker-runtime", parameter_validation=False)
        assert "InputLocation" in validation_error(
            unchecked.invoke_endpoint_async, EndpointName="async-https", InputLocation=f"http://{endpoint}/{BUCKET}/in/x")

        put_input(s3, "in/my file+1.csv", b"7,8,9")
        put_input(s3, "in/plain.csv", b"1,1,2")
        inputs = {
            f"https://{endpoint}/{BUCKET}/in/my%20file%2B1.csv": "7,8,9",
            f"https://{BUCKET}.s3.us-east-1.amazonaws.com/in/plain.csv": "1,1,2",
            f"https://s3.us-east-1.amazonaws.com/{BUCKET}/in/my+file%2B1.csv": "7,8,9",
        }
        accepted = {url: rt.invoke_endpoint_async(EndpointName="async-https", InputLocation=url, ContentType="text/csv")
                    for url in inputs}
        missing = rt.invoke_endpoint_async(EndpointName="async-https",
                                           InputLocation=f"https://{endpoint}/{BUCKET}/in/none.csv")
        for url, body in inputs.items():
            assert json.loads(wait_object(s3, accepted[url]["OutputLocation"]))["echo"] == body
        reason = wait_object(s3, missing["FailureLocation"]).decode()
        assert f"https://{endpoint}/{BUCKET}/in/none.csv" in reason and "NoSuchKey" in reason
        # The refused URLs were never queued: nothing is waiting and only these four outcomes exist.
        stats = json.loads(get(server, "/_dockyard/endpoints/async-https/stats"))["backlog"]
        assert stats["ApproximateBacklogSize"] == 0
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="https-out/")["Contents"]
        expected = {a["OutputLocation"] for a in accepted.values()} | {missing["FailureLocation"]}
        assert {f"s3://{BUCKET}/{o['Key']}" for o in listed} == expected
    finally:
        server.stop()

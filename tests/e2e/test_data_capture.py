"""Data capture through boto3 against a real server writing to moto's S3 on a loopback port: the
files' layout and every field of their JSON lines, UpdateEndpoint turning capture off, and an
unreachable destination costing records (counted), never invocations."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import FAST_WAIT
from e2e.models import SKLEARN_URI
from e2e.test_async_inference import BUCKET, aws, model_data, moto_url, start  # noqa: F401 (fixtures)

CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{BUCKET}/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
FILE = re.compile(r"capture/cap/AllTraffic/(\d{4})/(\d{2})/(\d{2})/(\d{2})/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl")


def config(sm, name: str, model: str, capture: dict) -> None:
    sm.create_endpoint_config(EndpointConfigName=name, DataCaptureConfig=capture, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])


def captured(s3) -> list[tuple[str, dict]]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/cap/").get("Contents", [])]
    return [(key, json.loads(line)) for key in keys
            for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()]


def test_capture_files_fields_and_update(tmp_path, moto_url, aws, model_data):  # noqa: F811
    s3 = aws["s3"]
    server = start(tmp_path, moto_url)
    try:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        sm.create_model(ModelName="cap", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                        PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": model_data})
        config(sm, "cap", "cap", CAPTURE)
        sm.create_endpoint(EndpointName="cap", EndpointConfigName="cap")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="cap", WaiterConfig=FAST_WAIT)
        assert sm.describe_endpoint(EndpointName="cap")["DataCaptureConfig"] == {
            "EnableCapture": True, "CaptureStatus": "Started", "CurrentSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/capture"}

        before = time.time()
        rt.invoke_endpoint(EndpointName="cap", ContentType="text/csv", Body=b"1,2,3", InferenceId="cap-1")
        rt.invoke_endpoint(EndpointName="cap", ContentType="application/x-thing", Body=b"abc")
        deadline = time.monotonic() + 60
        while len(records := captured(s3)) < 2:
            assert time.monotonic() < deadline, "capture files never appeared"
            time.sleep(0.2)
        for key, _ in records:
            match = FILE.fullmatch(key)
            assert match, key
            assert match.groups() == tuple(time.strftime("%Y %m %d %H", time.gmtime(before)).split())
        by_input = {r["captureData"]["endpointInput"]["observedContentType"]: r for _, r in records}
        csv = by_input["text/csv"]
        assert csv["eventVersion"] == "0"
        assert csv["captureData"]["endpointInput"] == {
            "observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"}
        output = csv["captureData"]["endpointOutput"]
        assert output["observedContentType"] == "application/json" and output["mode"] == "OUTPUT"
        assert output["encoding"] == "JSON" and json.loads(output["data"])["echo"] == "1,2,3"
        meta = csv["eventMetadata"]
        assert meta["inferenceId"] == "cap-1" and re.fullmatch(r"[0-9a-f-]{36}", meta["eventId"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", meta["inferenceTime"])
        other = by_input["application/x-thing"]["captureData"]["endpointInput"]
        assert other["encoding"] == "BASE64" and base64.b64decode(other["data"]) == b"abc"
        assert "inferenceId" not in by_input["application/x-thing"]["eventMetadata"]

        # One more, then UpdateEndpoint turns capture off: nothing after it is captured.
        rt.invoke_endpoint(EndpointName="cap", ContentType="text/csv", Body=b"last")
        config(sm, "cap-off", "cap", {**CAPTURE, "EnableCapture": False})
        sm.update_endpoint(EndpointName="cap", EndpointConfigName="cap-off")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="cap", WaiterConfig=FAST_WAIT)
        summary = sm.describe_endpoint(EndpointName="cap")["DataCaptureConfig"]
        assert summary["CaptureStatus"] == "Stopped" and summary["EnableCapture"] is False
        for _ in range(3):
            rt.invoke_endpoint(EndpointName="cap", ContentType="text/csv", Body=b"off")
    finally:
        server.stop()  # flushes what is buffered
    inputs = sorted(r["captureData"]["endpointInput"]["data"] for _, r in captured(s3))
    assert inputs == ["1,2,3", "YWJj", "last"]


def test_unreachable_destination_drops_and_counts_records_not_invocations(tmp_path, moto_url, aws, model_data):  # noqa: F811
    server = start(tmp_path, moto_url)
    try:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        sm.create_model(ModelName="lost", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                        PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": model_data})
        config(sm, "lost", "lost", {**CAPTURE, "DestinationS3Uri": "s3://no-such-bucket/capture"})
        sm.create_endpoint(EndpointName="lost", EndpointConfigName="lost")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="lost", WaiterConfig=FAST_WAIT)
        for _ in range(3):
            body = rt.invoke_endpoint(EndpointName="lost", ContentType="text/csv", Body=b"1")["Body"].read()
            assert json.loads(body)["echo"] == "1"
        deadline = time.monotonic() + 60
        pattern = re.compile(r'dockyard_capture_dropped_total\{endpoint="lost"\} (\d+)\.0')
        while not (found := pattern.search(urllib.request.urlopen(f"{server.url}/metrics").read().decode())) \
                or int(found.group(1)) < 3:
            assert time.monotonic() < deadline, "dropped records were not counted"
            time.sleep(0.2)
        assert int(found.group(1)) == 3
    finally:
        server.stop()


def test_https_destination_is_refused_with_the_s3_form_named(tmp_path, moto_url, aws, model_data):  # noqa: F811
    """botocore's pattern allows an https:// DestinationS3Uri, but dockyard writes captured data to
    s3:// and file:// only: the config is refused at once, rather than every record dropped later."""
    server = start(tmp_path, moto_url)
    try:
        sm = server.client("sagemaker")
        sm.create_model(ModelName="cap-https", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                        PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": model_data})
        destination = f"https://{BUCKET}.s3.amazonaws.com/capture"
        with pytest.raises(ClientError) as exc:
            config(sm, "cap-https", "cap-https", {**CAPTURE, "DestinationS3Uri": destination})
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert exc.value.response["Error"]["Message"] == (
            f"DataCaptureConfig.DestinationS3Uri {destination}: dockyard writes captured data to s3://BUCKET/PREFIX "
            "(or file://) locations only; give the s3:// form.")
        assert sm.list_endpoint_configs(NameContains="cap-https")["EndpointConfigs"] == []
    finally:
        server.stop()

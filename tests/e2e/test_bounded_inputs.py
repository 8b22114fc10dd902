"""Bounded, and never silently wrong (issue 12 §3), against a real ``dockyard serve``: chunked
invocation bodies read to their end, oversized or over-nested control-plane requests refused
with AWS-style errors, unknown members never stored or echoed, pagination tokens and the logs
route's ``lines`` validated."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import create_endpoint, wait_settled
from e2e.models import SKLEARN_URI, iris, iris_classifier, package

ROLE = "arn:aws:iam::123456789012:role/test"


def post(server, target: str, body: bytes, **headers: str) -> tuple[int, dict]:
    """One raw control-plane request (for input boto3 refuses to send)."""
    request = urllib.request.Request(server.url + "/", data=body, method="POST", headers={
        "X-Amz-Target": f"SageMaker.{target}", "Content-Type": "application/x-amz-json-1.1", **headers})
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# --- the runtime: chunked bodies ---------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(sm, tmp_path_factory):
    model = iris_classifier()
    tarball = package(tmp_path_factory.mktemp("chunked"), model)
    create_endpoint(sm, "chunked", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    return model


def paced(parts: list[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield part
        time.sleep(0.05)  # pacing only: each row leaves as its own chunk, at its own time


def invoke_chunked(server, parts: list[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/endpoints/chunked/invocations", body=paced(parts), encode_chunked=True,
                     headers={"Content-Type": "text/csv", "Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_chunked_body_is_read_to_its_end(classifier, server):
    rows = iris()[0][[0, 50, 100]]
    parts = [(",".join(map(str, row)) + "\n").encode() for row in rows]
    status, body = invoke_chunked(server, parts)
    assert status == 200, body
    assert json.loads(body) == classifier.predict(rows).tolist()  # three rows, three predictions


def test_a_chunked_body_over_6_mib_is_413(classifier, server):
    status, body = invoke_chunked(server, [b"1,2,3,4\n" * 131072] * 7)  # 7 MiB in 1 MiB chunks
    assert status == 413
    assert json.loads(body)["message"] == "HTTP content length exceeded 6291456 bytes."


# --- the control plane ---------------------------------------------------------------------------


def test_an_oversized_request_is_413_and_the_server_carries_on(server, sm):
    junk = json.dumps({"ModelName": "big", "Junk": "x" * (5 * 1024 * 1024)}).encode()
    status, body = post(server, "CreateModel", junk)
    assert status == 413
    assert body["__type"] == "RequestEntityTooLargeException"
    assert body["message"] == "Request body exceeded 4194304 bytes."
    with pytest.raises(ClientError) as info:
        sm.describe_model(ModelName="big")
    assert "Could not find model" in info.value.response["Error"]["Message"]


def test_json_nested_too_deeply_is_a_serialization_exception(server, sm):
    deep = b'{"ModelName": "deep", "Tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, body = post(server, "CreateModel", deep)
    assert status == 400
    assert body["__type"] == "SerializationException"
    assert body["message"] == "The request body nests JSON deeper than 64 levels."
    assert sm.list_models(NameContains="deep")["Models"] == []


def test_unknown_members_are_neither_stored_nor_echoed(server, sm, tmp_path):
    marker = "JUNK-" + "j" * 200_000
    request = {
        "ModelName": "junk-members",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": str(tmp_path / "model.tar.gz"),
                             "Environment": {"A": "1"}, "Junk": marker},
        "Tags": [{"Key": "team", "Value": "ml", "Junk": marker}],
        "Junk": marker,
    }
    status, body = post(server, "CreateModel", json.dumps(request).encode())
    assert status == 200, body
    status, body = post(server, "DescribeModel", json.dumps({"ModelName": "junk-members"}).encode())
    assert status == 200 and "JUNK-" not in json.dumps(body)
    assert "Junk" not in body and "Junk" not in body["PrimaryContainer"]
    assert body["PrimaryContainer"]["Environment"] == {"A": "1"}  # known members, maps kept whole
    assert sm.list_tags(ResourceArn=body["ModelArn"])["Tags"] == [{"Key": "team", "Value": "ml"}]
    stored = b"".join(p.read_bytes() for p in server.state_dir.glob("dockyard.db*"))
    assert b"JUNK-" not in stored


@pytest.mark.parametrize("offset", [-1, "Infinity", "NaN", 1.5, True, "3"])
def test_a_forged_next_token_is_invalid(sm, offset):
    raw = '{"offset": %s}' % (offset if isinstance(offset, str) and offset.isalpha() else json.dumps(offset))
    token = base64.urlsafe_b64encode(raw.encode()).decode()
    with pytest.raises(ClientError) as info:
        sm.list_models(NextToken=token)
    error = info.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("ValidationException", f"Invalid pagination token {token[:64]}.")


def test_a_garbage_next_token_is_invalid(sm):
    with pytest.raises(ClientError) as info:
        sm.list_endpoints(NextToken="not-a-token!")
    assert info.value.response["Error"]["Message"] == "Invalid pagination token not-a-token!."


def test_logs_lines_must_be_a_number(server, sm, tmp_path):
    model = {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": str(tmp_path / "none.tar.gz")}}
    create_endpoint(sm, "logs-lines", model, wait=False)
    wait_settled(sm, "logs-lines")
    url = f"{server.url}/_dockyard/endpoints/logs-lines/logs"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url + "?lines=abc")
    assert info.value.code == 400
    assert info.value.headers["x-amzn-ErrorType"] == "ValidationError:"
    assert json.loads(info.value.read())["message"] == (
        "lines must be a whole number of lines (0 or more), not 'abc'.")
    with urllib.request.urlopen(url + "?lines=0") as resp:
        assert all(entry["lines"] == [] for entry in json.loads(resp.read())["logs"])

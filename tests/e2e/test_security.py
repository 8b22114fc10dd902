"""Issue 12 §1 against a real ``dockyard serve``: SigV4 credentials, the non-loopback rule, TLS,
and private state — with boto3, the AWS CLI and dockyard's own CLI as the clients."""

from __future__ import annotations

import datetime as dt
import functools
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError
from servers import Server, self_signed_tls

from dockyard.cli.embedded import start_server, stop_server
from dockyard.runtime.ports import free_port
from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, iris, iris_classifier, package

KEY, SECRET = "AKIDDOCKYARDTEST", "the-right-secret"
TEMP_KEY, TEMP_SECRET, TOKEN = "ASIADOCKYARDTEST", "temporary-secret", "the-session-token"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("secured")
    srv = Server(root / "state", root / "server.log", credentials={KEY: SECRET, "AKIDSECOND": "second", TEMP_KEY: TEMP_SECRET},
                 session_tokens={TEMP_KEY: TOKEN}).start()
    yield srv
    srv.stop()


def refusal(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response


def test_signed_requests_work_on_both_apis_including_a_streamed_body(secured: Server, tmp_path: Path) -> None:
    sm, rt = secured.client("sagemaker"), secured.client("sagemaker-runtime")
    create_endpoint(sm, "signed", {"PrimaryContainer": {"Image": SKLEARN_URI,
                                                        "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    try:
        x, _ = iris()
        small = "\n".join(",".join(map(str, row)) for row in x[:3])
        out = rt.invoke_endpoint(EndpointName="signed", Body=small, ContentType="text/csv")
        assert len(out["Body"].read().decode().split()) == 3
        # Over 256 KiB the gateway streams bodies: the signature must still cover every byte.
        rows = [",".join(map(str, x[i % len(x)])) for i in range(20000)]
        big = "\n".join(rows).encode()
        assert len(big) > 256 * 1024
        out = rt.invoke_endpoint(EndpointName="signed", Body=big, ContentType="text/csv")
        assert len(out["Body"].read().decode().split()) == 20000
        # Any of the file's keys is accepted.
        other = secured.client("sagemaker", signed_by=("AKIDSECOND", "second"))
        assert other.describe_endpoint(EndpointName="signed")["EndpointStatus"] == "InService"
    finally:
        delete_all(sm, "signed")


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_wrong_unknown_missing_and_expired_signatures_get_aws_errors_once(secured: Server, service: str) -> None:
    def call(client: Any) -> Any:
        if service == "sagemaker":
            return lambda: client.list_models()
        return lambda: client.invoke_endpoint(EndpointName="anything", Body=b"1,2", ContentType="text/csv")

    wrong = refusal(call(secured.client(service, signed_by=(KEY, "not-the-secret"))))
    assert wrong["Error"]["Code"] == "InvalidSignatureException"
    assert wrong["Error"]["Message"].startswith("The request signature we calculated does not match")
    assert wrong["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert wrong["ResponseMetadata"]["RetryAttempts"] == 0  # boto3's default retries leave 403 alone

    unknown = refusal(call(secured.client(service, signed_by=("AKIDNOBODY", SECRET))))
    assert (unknown["Error"]["Code"], unknown["Error"]["Message"]) == (
        "UnrecognizedClientException", "The security token included in the request is invalid.")

    unsigned = refusal(call(secured.client(service, signature_version=UNSIGNED)))
    assert (unsigned["Error"]["Code"], unsigned["Error"]["Message"]) == (
        "MissingAuthenticationTokenException", "Missing Authentication Token")
    assert unsigned["ResponseMetadata"]["HTTPStatusCode"] == 403

    ten_minutes_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=10)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=ten_minutes_ago):
        expired = refusal(call(secured.client(service)))
    assert expired["Error"]["Code"] == "InvalidSignatureException"
    assert expired["Error"]["Message"].startswith("Signature expired: ")
    assert "refused" in secured.log() and "Traceback" not in secured.log()


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_a_key_with_a_session_token_needs_that_token(secured: Server, service: str) -> None:
    def call(token: str | None, key: tuple[str, str] = (TEMP_KEY, TEMP_SECRET)) -> Any:
        client = secured.client(service, signed_by=key, session_token=token)
        if service == "sagemaker":
            return client.list_models()
        return client.invoke_endpoint(EndpointName="nope", Body=b"1", ContentType="text/csv")

    if service == "sagemaker":
        assert "Models" in call(TOKEN)
        # A key without a token in the file ignores one the client sends.
        assert "Models" in call("anything", (KEY, SECRET))
    else:  # past the signature check, the runtime API answers
        assert refusal(lambda: call(TOKEN))["Error"]["Code"] == "ValidationError"
    for token in (None, "another-token"):
        refused = refusal(functools.partial(call, token))
        assert (refused["Error"]["Code"], refused["Error"]["Message"]) == (
            "UnrecognizedClientException", "The security token included in the request is invalid.")
        assert (refused["ResponseMetadata"]["HTTPStatusCode"], refused["ResponseMetadata"]["RetryAttempts"]) == (403, 0)


def test_metrics_and_admin_routes_need_a_signature_health_does_not(secured: Server) -> None:
    for path in ("/metrics", "/_dockyard/endpoints/x/logs"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(secured.url + path, timeout=10)
        assert info.value.code == 403
        assert b"MissingAuthenticationTokenException" in info.value.read()
    with urllib.request.urlopen(secured.url + "/_dockyard/health", timeout=10) as resp:
        assert resp.status == 200


def test_metrics_open_opens_metrics_only(tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", tmp_path / "server.log", args=("--metrics-open",), credentials={KEY: SECRET}).start()
    try:
        with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as resp:
            assert b"# TYPE" in resp.read()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.url + "/_dockyard/endpoints/x/stats", timeout=10)
        assert info.value.code == 403
        assert refusal(lambda: srv.client("sagemaker", signature_version=UNSIGNED).list_models())["Error"]["Code"] == \
            "MissingAuthenticationTokenException"
    finally:
        srv.stop()


def _cli(*args: str, key: str, secret: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-west-2",
           **env_vars}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=120, check=False)


def test_aws_cli_and_dockyard_cli_sign_with_the_environments_credentials(secured: Server) -> None:
    ok = _cli("aws", "sagemaker", "list-endpoints", "--endpoint-url", secured.url, key=KEY, secret=SECRET)
    assert ok.returncode == 0, ok.stderr
    assert '"Endpoints"' in ok.stdout
    bad = _cli("aws", "sagemaker", "list-endpoints", "--endpoint-url", secured.url, key=KEY, secret="wrong")
    assert bad.returncode != 0 and "InvalidSignatureException" in bad.stderr

    dockyard = [sys.executable, "-m", "dockyard"]
    logs = _cli(*dockyard, "logs", "no-such-endpoint", "--endpoint-url", secured.url, key=KEY, secret=SECRET)
    assert "Endpoint no-such-endpoint not found." in logs.stderr  # got past authentication
    denied = _cli(*dockyard, "logs", "no-such-endpoint", "--endpoint-url", secured.url, key="AKIDNOBODY", secret="x")
    assert denied.returncode != 0 and "The security token included in the request is invalid." in denied.stderr
    listed = _cli(*dockyard, "endpoints", "--endpoint-url", secured.url, key=KEY, secret=SECRET)
    assert listed.returncode == 0, listed.stderr


def test_state_dir_database_and_logs_are_private(secured: Server, tmp_path: Path) -> None:
    sm = secured.client("sagemaker")
    create_endpoint(sm, "private", {"PrimaryContainer": {"Image": SKLEARN_URI,
                                                         "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    try:
        assert stat.S_IMODE(secured.state_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((secured.state_dir / "dockyard.db").stat().st_mode) == 0o600
        logs = list((secured.state_dir / "logs").rglob("*.log"))
        assert logs
        assert {stat.S_IMODE(p.stat().st_mode) for p in logs} == {0o600}
    finally:
        delete_all(sm, "private")


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return start_server(tmp_path / "state", free_port(), tmp_path / "server.log", *args)


def test_a_non_loopback_host_needs_credentials_or_an_explicit_insecure_flag(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--host", "0.0.0.0")
    assert proc.wait(60) != 0
    out = (tmp_path / "server.log").read_text()
    assert "refusing to serve 0.0.0.0 without credentials" in out and "Traceback" not in out

    (tmp_path / "server.log").write_text("")
    port = free_port()
    proc = start_server(tmp_path / "state", port, tmp_path / "server.log", "--host", "0.0.0.0", "--insecure-no-auth")
    try:
        from dockyard.cli.embedded import wait_until_up

        wait_until_up(f"http://127.0.0.1:{port}", proc)
        assert "WITHOUT authentication (--insecure-no-auth)" in (tmp_path / "server.log").read_text()
    finally:
        stop_server(proc)


def test_tls_with_credentials_serves_boto3_over_https(tmp_path: Path) -> None:
    tls = self_signed_tls(tmp_path)
    srv = Server(tmp_path / "state", tmp_path / "server.log", credentials={KEY: SECRET}, tls=tls).start()
    try:
        assert srv.url.startswith("https://")
        sm = srv.client("sagemaker")
        sm.create_model(ModelName="over-tls", PrimaryContainer={"Image": SKLEARN_URI},
                        ExecutionRoleArn="arn:aws:iam::123456789012:role/test")
        assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["over-tls"]
        assert refusal(lambda: srv.client("sagemaker", signed_by=(KEY, "wrong")).list_models())["Error"]["Code"] == \
            "InvalidSignatureException"
        logs = _cli(sys.executable, "-m", "dockyard", "logs", "nothing", "--endpoint-url", srv.url,
                    key=KEY, secret=SECRET, AWS_CA_BUNDLE=str(tls[0]))
        assert "Endpoint nothing not found." in logs.stderr  # verified the certificate, signed, answered
        with pytest.raises(OSError):  # plain HTTP to a TLS port gets no HTTP answer
            urllib.request.urlopen(srv.url.replace("https", "http") + "/_dockyard/health", timeout=10)
    finally:
        srv.stop()


def test_sagemaker_sdk_works_unchanged_with_the_servers_credentials(secured: Server, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker SDK is installed by .ci/run")
    import boto3
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer

    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

    def session(secret: str) -> Any:
        b = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=secret, region_name="eu-central-1")
        return sagemaker.Session(boto_session=b, default_bucket="bkt",
                                 sagemaker_client=b.client("sagemaker", endpoint_url=secured.url),
                                 sagemaker_runtime_client=b.client("sagemaker-runtime", endpoint_url=secured.url))

    sess = session(SECRET)
    model = Model(image_uri=SKLEARN_URI, model_data=str(package(tmp_path, iris_classifier())),
                  role="arn:aws:iam::123456789012:role/sdk", sagemaker_session=sess, name="sdk-signed")
    model.deploy(1, "ml.m5.large", endpoint_name="sdk-signed", wait=False)
    try:
        sess.wait_for_endpoint("sdk-signed", poll=1)
        x, _ = iris()
        predictor = Predictor("sdk-signed", sagemaker_session=sess, serializer=CSVSerializer())
        assert len(predictor.predict(x[:2].tolist()).decode().split()) == 2
        wrong = Predictor("sdk-signed", sagemaker_session=session("wrong"), serializer=CSVSerializer())
        with pytest.raises(ClientError, match="InvalidSignatureException"):
            wrong.predict(x[:2].tolist())
    finally:
        delete_all(secured.client("sagemaker"), "sdk-signed")

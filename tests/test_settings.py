"""Settings from ``DOCKYARD_*`` variables: every field by one loop over the dataclass, converted by
its annotation and validated; a bad value is one line naming the variable, also from ``dockyard
serve``; and the payload limit, which had no variable before, reaches a server."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from servers import Server

from dockyard.settings import MAX_PAYLOAD_BYTES, Settings, SettingsError, env_name


def test_every_field_reads_its_variable():
    values = {"host": "0.0.0.0", "port": "9000", "state_dir": "/srv/dy", "runtime": "docker", "region": "eu-west-1",
              "account_id": "000000000000", "invocation_timeout": "5.5", "startup_timeout": "10",
              "stop_grace": "1", "max_payload_bytes": "1024", "health_interval": "0.5", "max_containers": "3",
              "restart_backoff": "0.25", "restart_backoff_max": "4",
              "registry": "localhost:5000", "base_image": "python:3.12-slim", "credentials": "/etc/dy/keys",
              "insecure_no_auth": "true", "tls_cert": "/etc/dy/cert.pem", "tls_key": "/etc/dy/key.pem",
              "metrics_open": "1", "header_timeout": "2.5", "body_timeout": "30", "keepalive_timeout": "5",
              "max_connections": "64"}
    assert set(values) == {f.name for f in dataclasses.fields(Settings)}, "a new field needs a value here"
    settings = Settings.from_env({env_name(k): v for k, v in values.items()})
    assert settings == Settings(host="0.0.0.0", port=9000, state_dir=Path("/srv/dy"), runtime="docker",
                                region="eu-west-1", account_id="000000000000", invocation_timeout=5.5,
                                startup_timeout=10.0, stop_grace=1.0, max_payload_bytes=1024, health_interval=0.5,
                                restart_backoff=0.25, restart_backoff_max=4.0, max_containers=3, registry="localhost:5000", base_image="python:3.12-slim",
                                credentials=Path("/etc/dy/keys"), insecure_no_auth=True, tls_cert=Path("/etc/dy/cert.pem"),
                                tls_key=Path("/etc/dy/key.pem"), metrics_open=True, header_timeout=2.5, body_timeout=30.0,
                                keepalive_timeout=5.0, max_connections=64)


def test_unset_and_empty_variables_keep_defaults_and_flags_win():
    settings = Settings.from_env({"DOCKYARD_PORT": "", "AWS_DEFAULT_REGION": "ap-south-1", "DOCKYARD_HOST": "::1"},
                                 host="10.0.0.1", port=None)
    assert (settings.port, settings.region, settings.host, settings.max_payload_bytes) == (
        8780, "ap-south-1", "10.0.0.1", MAX_PAYLOAD_BYTES)


def test_fields_added_later_are_read_without_code_for_them():
    @dataclasses.dataclass(frozen=True)
    class Extended(Settings):
        allow_paths: tuple[Path, ...] = ()
        insecure: bool = False
        credentials_file: Path | None = None
        workers: int | None = None

    env = {"DOCKYARD_ALLOW_PATH": "unused", "DOCKYARD_ALLOW_PATHS": os.pathsep.join(["/data/a", "/data/b"]),
           "DOCKYARD_INSECURE": "yes", "DOCKYARD_CREDENTIALS_FILE": "/etc/creds", "DOCKYARD_WORKERS": "4"}
    settings = Extended.from_env(env)
    assert (settings.allow_paths, settings.insecure, settings.credentials_file, settings.workers) == (
        (Path("/data/a"), Path("/data/b")), True, Path("/etc/creds"), 4)
    with pytest.raises(SettingsError, match=r"^DOCKYARD_INSECURE='maybe' is not a boolean"):
        Extended.from_env({"DOCKYARD_INSECURE": "maybe"})


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DOCKYARD_PORT", "abc", "DOCKYARD_PORT='abc' is not an integer"),
    ("DOCKYARD_PORT", "70000", "DOCKYARD_PORT=70000 is above the maximum 65535"),
    ("DOCKYARD_STOP_GRACE", "soon", "DOCKYARD_STOP_GRACE='soon' is not a number"),
    ("DOCKYARD_HEALTH_INTERVAL", "0", "DOCKYARD_HEALTH_INTERVAL=0.0 is below the minimum 0.01"),
    ("DOCKYARD_MAX_PAYLOAD_BYTES", "-1", "DOCKYARD_MAX_PAYLOAD_BYTES=-1 is below the minimum 1"),
    ("DOCKYARD_RUNTIME", "k8s", "DOCKYARD_RUNTIME='k8s' is not one of process, docker"),
])
def test_a_bad_value_is_an_error_naming_the_variable(variable, value, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    assert str(info.value) == message


def test_serve_with_a_bad_variable_is_one_line_not_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dockyard", "serve", "--state-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "DOCKYARD_PORT": "eighty"})
    assert out.returncode == 1
    assert out.stderr == "Error: DOCKYARD_PORT='eighty' is not an integer\n"
    assert out.stdout == ""


def test_the_payload_limit_variable_reaches_the_server(tmp_path):
    server = Server(tmp_path / "state", tmp_path / "server.log",
                    {"DOCKYARD_MAX_PAYLOAD_BYTES": "1000"}).start()
    try:
        rt = server.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"})
        with pytest.raises(ClientError) as info:
            rt.invoke_endpoint(EndpointName="any", Body=b"x" * 1001, ContentType="text/csv")
        assert info.value.response["Error"]["Message"] == "HTTP content length exceeded 1000 bytes."
    finally:
        server.stop()

"""Settings from ``DOCKYARD_*`` variables: every field by one loop over the dataclass, converted by
its annotation and validated; a bad value is one line naming the variable, also from ``dockyard
serve``; and the payload limit, which had no variable before, reaches a server."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from servers import Server

from dockyard.settings import MAX_PAYLOAD_BYTES, Settings, SettingsError, env_name


def _sample(field: dataclasses.Field, annotation: object) -> tuple[str, object]:
    """A value unlike the field's default: as a variable's text, and as the field should hold it."""
    default = field.default if field.default is not dataclasses.MISSING else None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if field.metadata.get("choices"):
        choice = next(c for c in field.metadata["choices"] if c != default)
        return choice, choice
    if typing.get_origin(annotation) is tuple:
        return os.pathsep.join(["/srv/a", "/srv/b"]), (Path("/srv/a"), Path("/srv/b"))
    if annotation is bool:
        return ("0", False) if default else ("yes", True)
    if annotation is int:
        return str((default or 6) + 1), (default or 6) + 1
    if annotation is float:
        return str((default or 1.0) + 0.5), (default or 1.0) + 0.5
    if annotation is Path:
        return f"/srv/{field.name}", Path(f"/srv/{field.name}")
    return f"x-{field.name}", f"x-{field.name}"


def test_every_field_reads_its_variable():
    hints = typing.get_type_hints(Settings)
    samples = {f.name: _sample(f, hints[f.name]) for f in dataclasses.fields(Settings)}
    settings = Settings.from_env({env_name(name): text for name, (text, _) in samples.items()})
    assert {name: getattr(settings, name) for name in samples} == {name: value for name, (_, value) in samples.items()}
    assert (settings.port, settings.runtime, settings.health_interval, settings.max_payload_bytes) == (
        8781, "docker", 2.5, MAX_PAYLOAD_BYTES + 1)


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
    ("DOCKYARD_RUNTIME", "k8s", "DOCKYARD_RUNTIME='k8s' is not one of process, docker, ray"),
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

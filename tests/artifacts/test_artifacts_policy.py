"""AccessPolicy: local paths only under the allowed roots (never /proc, /sys, /dev or device
files), no link-local or metadata hosts, and a size limit on model data taken while it is written."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from artifact_helpers import make_tar_gz, tree

from dockyard.artifacts import ArtifactError, ArtifactStore
from dockyard.artifacts.policy import AccessPolicy, check_local_path
from dockyard.artifacts.unpack import MEMBER_BYTES

MIB = 1024 * 1024


def store_for(tmp_path: Path, **policy: object) -> ArtifactStore:
    return ArtifactStore(tmp_path / "cache", policy=AccessPolicy(**policy))


def gzip_bomb(size: int) -> bytes:
    """A model.tar.gz whose one file is ``size`` zero bytes: a few KiB that expand to ``size``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return buffer.getvalue()


# --- local paths ----------------------------------------------------------------------------


def test_a_path_outside_the_roots_is_refused_naming_it_and_the_setting(tmp_path):
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    (elsewhere / "model.joblib").write_bytes(b"secret")
    store = store_for(tmp_path, allow_paths=(allowed,))
    with pytest.raises(ArtifactError) as info:
        store.materialize_model_data({"ModelDataUrl": elsewhere.as_uri()}, tmp_path / "dest")
    message = str(info.value)
    assert f"Refusing to read model data at {elsewhere}" in message
    assert f"outside the allowed local paths ({allowed})" in message
    assert "--allow-path DIR" in message
    assert tree(tmp_path / "dest") == {}


def test_a_path_under_a_root_is_read(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "model").mkdir(parents=True)
    (allowed / "model" / "model.joblib").write_bytes(b"weights")
    store = store_for(tmp_path, allow_paths=(allowed,))
    store.materialize_model_data({"ModelDataUrl": str(allowed / "model")}, tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


def test_no_roots_allow_nothing(tmp_path):
    (tmp_path / "model.tar.gz").write_bytes(make_tar_gz({"model.joblib": b"x"}))
    with pytest.raises(ArtifactError, match=r"outside the allowed local paths \(none\)"):
        store_for(tmp_path, allow_paths=()).materialize_model_data(
            {"ModelDataUrl": str(tmp_path / "model.tar.gz")}, tmp_path / "dest"
        )


def test_a_refusal_does_not_tell_whether_the_path_exists(tmp_path):
    store = store_for(tmp_path, allow_paths=(tmp_path / "allowed",))
    with pytest.raises(ArtifactError, match="outside the allowed local paths"):
        store.materialize_model_data({"ModelDataUrl": "/no/such/model.tar.gz"}, tmp_path / "dest")


@pytest.mark.parametrize("path", ["/dev/zero", "/proc/self/environ", "/sys/kernel"])
def test_proc_sys_and_dev_are_never_read_even_under_an_allowed_root(tmp_path, path):
    with pytest.raises(ArtifactError, match="is never allowed"):
        store_for(tmp_path, allow_paths=(Path("/"),)).materialize_model_data(
            {"ModelDataUrl": path}, tmp_path / "dest"
        )


def test_a_symlink_inside_a_model_directory_is_checked_where_it_points(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "model.joblib").write_bytes(b"weights")
    (allowed / "zeros.bin").symlink_to("/dev/zero")
    store = store_for(tmp_path, allow_paths=(allowed,))
    with pytest.raises(ArtifactError, match="/dev/zero is never allowed"):
        store.materialize_model_data({"ModelDataUrl": str(allowed)}, tmp_path / "dest")
    (allowed / "zeros.bin").unlink()
    (tmp_path / "secret").write_bytes(b"secret")
    (allowed / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(ArtifactError, match="outside the allowed local paths"):
        store.materialize_model_data({"ModelDataUrl": str(allowed)}, tmp_path / "dest")
    assert tree(tmp_path / "dest") == {}


def test_a_fifo_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "model.tar.gz")
    with pytest.raises(ArtifactError, match="not a regular file or directory"):
        check_local_path(tmp_path / "model.tar.gz", (tmp_path,), "model data")


# --- link-local and metadata addresses ------------------------------------------------------


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/x"])
def test_metadata_addresses_are_refused(tmp_path, url):
    with pytest.raises(ArtifactError, match="link-local or cloud-metadata address"):
        store_for(tmp_path).materialize_model_data({"ModelDataUrl": url}, tmp_path / "dest")


def test_a_name_resolving_to_a_metadata_address_is_refused(tmp_path, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "models.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ArtifactError) as info:
        store_for(tmp_path).materialize_model_data(
            {"ModelDataUrl": "http://models.example.test/model.tar.gz"}, tmp_path / "dest"
        )
    assert "resolves to 169.254.169.254, a link-local or cloud-metadata address" in str(info.value)
    assert "DOCKYARD_ALLOW_LINK_LOCAL" in str(info.value)


class Handler(BaseHTTPRequestHandler):
    """/redirect → the metadata service; /endless → zeros until the client hangs up."""

    def do_HEAD(self) -> None:
        self.send_error(405)

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/iam/")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(bytes(MIB))
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def hostile_http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_to_the_metadata_service_is_refused(tmp_path, hostile_http):
    with pytest.raises(ArtifactError, match="169.254.169.254, a link-local or cloud-metadata address"):
        store_for(tmp_path).materialize_model_data(
            {"ModelDataUrl": hostile_http + "/redirect"}, tmp_path / "dest"
        )


def test_an_endless_download_stops_at_the_limit(tmp_path, hostile_http):
    with pytest.raises(ArtifactError) as info:
        store_for(tmp_path, max_unpacked_bytes=4 * MIB).materialize_model_data(
            {"ModelDataUrl": hostile_http + "/endless"}, tmp_path / "dest"
        )
    assert f"{hostile_http}/endless exceeds the limit of {4 * MIB} bytes" in str(info.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


# --- the unpacked size limit ----------------------------------------------------------------


def test_a_gzip_bomb_stops_before_it_is_written(tmp_path):
    bomb = gzip_bomb(64 * MIB)
    assert len(bomb) < MIB // 4
    (tmp_path / "model.tar.gz").write_bytes(bomb)
    with pytest.raises(ArtifactError) as info:
        store_for(tmp_path, max_unpacked_bytes=8 * MIB).materialize_model_data(
            {"ModelDataUrl": str(tmp_path / "model.tar.gz")}, tmp_path / "dest"
        )
    assert str(info.value) == (
        f"{tmp_path / 'model.tar.gz'} exceeds the limit of {8 * MIB} bytes for an instance's model "
        "data (unpacked); raise max_unpacked_bytes (DOCKYARD_MAX_UNPACKED_BYTES) if it is meant to "
        "be this large."
    )
    assert tree(tmp_path / "dest") == {}


def test_an_archive_of_many_empty_files_stops_at_the_limit(tmp_path):
    # Each member costs at least a block: a million empty files would otherwise cost nothing.
    (tmp_path / "model.tar.gz").write_bytes(make_tar_gz({f"f{n}": b"" for n in range(2 * MIB // MEMBER_BYTES)}))
    with pytest.raises(ArtifactError, match=f"exceeds the limit of {MIB} bytes"):
        store_for(tmp_path, max_unpacked_bytes=MIB).materialize_model_data(
            {"ModelDataUrl": str(tmp_path / "model.tar.gz")}, tmp_path / "dest"
        )
    assert tree(tmp_path / "dest") == {}


def test_a_directory_copy_stops_at_the_limit(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for n in range(4):
        (model / f"part{n}.bin").write_bytes(bytes(MIB))
    with pytest.raises(ArtifactError, match=f"exceeds the limit of {3 * MIB} bytes"):
        store_for(tmp_path, max_unpacked_bytes=3 * MIB).materialize_model_data(
            {"ModelDataUrl": str(model)}, tmp_path / "dest"
        )
    assert tree(tmp_path / "dest") == {}


def test_containers_of_one_instance_share_the_budget(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(make_tar_gz({"w": bytes(3 * MIB)}))
    store = store_for(tmp_path, max_unpacked_bytes=5 * MIB)
    budget = store.budget()
    store.materialize_model_data({"ModelDataUrl": str(tmp_path / "a.tar.gz")}, tmp_path / "one", budget)
    assert tree(tmp_path / "one") == {"w": bytes(3 * MIB)}
    with pytest.raises(ArtifactError, match="exceeds the limit"):
        store.materialize_model_data({"ModelDataUrl": str(tmp_path / "a.tar.gz")}, tmp_path / "two", budget)
    # A new instance starts from zero.
    store.materialize_model_data({"ModelDataUrl": str(tmp_path / "a.tar.gz")}, tmp_path / "three")


def test_default_roots_are_home_and_cwd_and_none_with_credentials(tmp_path, monkeypatch):
    from dockyard.settings import Settings

    monkeypatch.chdir(tmp_path)
    env = {"DOCKYARD_STATE_DIR": str(tmp_path / "state")}
    assert AccessPolicy.from_settings(Settings.from_env(env)).allow_paths == (Path.home(), tmp_path)
    credentials = tmp_path / "credentials"
    credentials.write_text("[k]\naws_access_key_id = a\naws_secret_access_key = b\n")
    with_credentials = Settings.from_env({**env, "DOCKYARD_CREDENTIALS": str(credentials)})
    assert AccessPolicy.from_settings(with_credentials).allow_paths == ()
    given = Settings.from_env({**env, "DOCKYARD_ALLOW_PATHS": f"/srv/models{os.pathsep}/data"})
    assert AccessPolicy.from_settings(given).allow_paths == (Path("/srv/models"), Path("/data"))


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("::ffff:169.254.169.254", True),  # IPv4-mapped: the same host over an IPv6 socket
        ("fd00:ec2::254", True),
        ("fe80::1%eth0", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("fd00:ec2::253", False),
    ],
)
def test_peer_addresses_checked_after_connecting(address, refused):
    from dockyard.artifacts.policy import _forbidden_address

    assert _forbidden_address(address) is refused


def test_an_ip_written_in_hex_is_resolved_before_it_is_judged(tmp_path):
    with pytest.raises(ArtifactError, match="resolves to 169.254.169.254"):
        store_for(tmp_path).materialize_model_data({"ModelDataUrl": "http://0xa9fea9fe/x"}, tmp_path / "dest")


def test_a_volume_size_only_lowers_the_operators_limit(tmp_path):
    store = store_for(tmp_path, max_unpacked_bytes=4 * MIB)
    assert store.budget(2 * MIB).limit == 2 * MIB
    assert store.budget(64 * MIB).limit == 4 * MIB
    assert store.budget(None).limit == 4 * MIB

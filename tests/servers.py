"""A real ``dockyard serve`` in a child process, for tests: its URL, state dir, log, clients —
optionally with SigV4 credentials (``credentials``, and ``session_tokens`` for some of their
keys) and HTTPS (``tls``: certificate, key)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from dockyard.cli.embedded import start_server, stop_server, wait_until_up
from dockyard.runtime.ports import free_port


class Server:
    """A running dockyard server: its URL, state dir, log, and boto3 clients."""

    def __init__(
        self,
        state_dir: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        *,
        args: tuple[str, ...] = (),
        credentials: dict[str, str] | None = None,
        session_tokens: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        allow_paths: tuple[Path, ...] = (Path(tempfile.gettempdir()),),
    ) -> None:
        self.state_dir, self.log_path, self.extra_env = state_dir, log_path, extra_env or {}
        self.port = free_port()
        # Test model data lives in pytest's temporary directories, outside the default local roots.
        self.args = [*args, *(arg for path in allow_paths for arg in ("--allow-path", str(path)))]
        self.credentials, self.session_tokens = credentials, session_tokens or {}
        if credentials:
            path = log_path.parent / f"credentials-{self.port}"
            path.write_text("".join(
                f"[key{i}]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"
                + (f"aws_session_token = {self.session_tokens[akid]}\n" if akid in self.session_tokens else "")
                for i, (akid, secret) in enumerate(credentials.items())
            ))
            self.args += ["--credentials", str(path)]
        self.verify: str | None = None
        if tls:
            self.args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
            self.verify = str(tls[0])
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> Server:
        self.proc = start_server(self.state_dir, self.port, self.log_path, *self.args, env=self.extra_env)
        wait_until_up(self.url, self.proc, context=ssl.create_default_context(cafile=self.verify) if self.verify else None)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)

    def client(self, service: str, *, signed_by: tuple[str, str] | None = None, session_token: str | None = None,
               **config: object):
        """A boto3 client; signed by ``signed_by`` (key, secret) with ``session_token``, else by the
        server's first key (and its token) when it has credentials, else by the environment's."""
        if signed_by is None and self.credentials:
            signed_by = next(iter(self.credentials.items()))
            session_token = self.session_tokens.get(signed_by[0])
        keys = {"aws_access_key_id": signed_by[0], "aws_secret_access_key": signed_by[1]} if signed_by else {}
        if session_token is not None:
            keys["aws_session_token"] = session_token
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(**config) if config else None,
            verify=self.verify,
            **keys,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def with_s3(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[tuple[Server, Any]]:
    """A server whose S3 is moto's on a loopback port (AWS_ENDPOINT_URL_S3), and an S3 client for
    it with the bucket ``models``."""
    from moto.server import ThreadedMotoServer

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    url = f"http://127.0.0.1:{port}"
    srv = Server(root / "state", root / "server.log", {**(extra_env or {}), "AWS_ENDPOINT_URL_S3": url}).start()
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        yield srv, s3
    finally:
        srv.stop()
        moto.stop()


def self_signed_tls(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, PEM files under ``tmp_path``: ``Server(tls=...)``'s
    argument (skips without the ``cryptography`` package)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path

"""What model data may be read, and how much of it: the one home of those rules.

* Local paths (``file://`` model data, code directories, and local-directory images, which the
  runtime checks with ``check_local_path`` too) must resolve under an allowed root; ``/proc``,
  ``/sys``, ``/dev`` and device files, FIFOs and sockets never are.
* ``http(s)://`` model data must not come from link-local or cloud-metadata addresses
  (169.254.0.0/16, fe80::/10, fd00:ec2::254): a request there reads the host's instance
  credentials. Checked on the resolved name first, then on every connection's peer address, so
  neither a DNS name pointing there nor a redirect gets through.
* ``Budget``: the bytes one instance's model data may take once unpacked or copied, taken as the
  bytes are written, so a small archive that expands without end stops at the limit.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import stat
import threading
import typing
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.artifacts.errors import ArtifactError
from dockyard.settings import MAX_UNPACKED_BYTES, Settings

GIB = 1024**3
_NEVER = (Path("/proc"), Path("/sys"), Path("/dev"))
_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
)
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class AccessPolicy:
    """``allow_paths`` None lets any local path through (library use; the server always sets it)."""

    allow_paths: tuple[Path, ...] | None = None
    allow_link_local: bool = False
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        return cls(allowed_roots(settings), settings.allow_link_local, settings.max_unpacked_bytes)


def allowed_roots(settings: Settings) -> tuple[Path, ...]:
    """The roots local paths must lie under: ``allow_paths`` as given; by default none when
    credentials are configured (requests may come from other hosts), else the user's home and
    the current directory."""
    if settings.allow_paths is not None:
        return settings.allow_paths
    if settings.credentials is not None:
        return ()
    return (Path.home(), Path.cwd())


def check_local_path(path: Path, roots: Sequence[Path] | None, what: str) -> Path:
    """``path`` if it may be read: under one of ``roots`` (any, if None), never a device file or
    under /proc, /sys or /dev. ``ArtifactError`` naming the path and the setting otherwise."""
    real = Path(os.path.realpath(path))
    if any(_within(real, Path(os.path.realpath(never))) for never in _NEVER):
        raise ArtifactError(f"Refusing to read {what} at {path}: {real} is never allowed.")
    try:
        mode = real.stat().st_mode
    except OSError:
        mode = None  # missing: the caller reports that
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ArtifactError(
            f"Refusing to read {what} at {path}: not a regular file or directory."
        )
    if roots is None or any(_within(real, Path(os.path.realpath(r))) for r in roots):
        return path
    allowed = ", ".join(str(r) for r in roots) or "none"
    raise ArtifactError(
        f"Refusing to read {what} at {path}: it is outside the allowed local paths ({allowed}). "
        "Start dockyard serve with --allow-path DIR (setting allow_paths) to allow a directory."
    )


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# --- link-local and metadata addresses ------------------------------------------------------


def _forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _METADATA_NETWORKS)


def _refusal(url: str, address: str) -> str:
    return (
        f"{url} resolves to {address}, a link-local or cloud-metadata address; refusing to fetch "
        "from it (set allow_link_local, DOCKYARD_ALLOW_LINK_LOCAL=true, to allow it)"
    )


def check_remote_host(url: str, what: str) -> None:
    """Refuse ``url`` if its host name resolves to a link-local or metadata address."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        raise ArtifactError(f"{what.capitalize()} location {url} names no host.")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return  # unresolvable: the download reports it
    for info in infos:
        address = str(info[4][0])
        if _forbidden_address(address):
            raise ArtifactError(f"Could not download {what}: {_refusal(url, address)}.")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self)


def _check_peer(connection: http.client.HTTPConnection) -> None:
    # The address actually connected to: DNS may have changed since the check by name, and a
    # redirect opens a new connection to a host of the server's choosing.
    peer = str(connection.sock.getpeername()[0])
    if _forbidden_address(peer):
        connection.close()
        raise OSError(_refusal(f"{connection.host}", peer))


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPSConnection, req)


class _GuardedRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: typing.IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_remote_host(newurl, "model data")  # by name, before connecting anywhere
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def http_opener(allow_link_local: bool) -> urllib.request.OpenerDirector:
    """urllib's opener, refusing link-local and metadata peers unless ``allow_link_local``."""
    if allow_link_local:
        return urllib.request.build_opener()
    return urllib.request.build_opener(
        _GuardedHTTPHandler, _GuardedHTTPSHandler, _GuardedRedirectHandler
    )


# --- the unpacked size budget ---------------------------------------------------------------


class Budget:
    """Bytes left for one instance's model data; thread-safe (containers fetch in parallel)."""

    def __init__(self, limit: int, setting: str = "max_unpacked_bytes (DOCKYARD_MAX_UNPACKED_BYTES)") -> None:
        self.limit = limit
        self._setting = setting  # what to raise, for the error message
        self._used = 0
        self._lock = threading.Lock()

    def take(self, size: int, label: str) -> None:
        """Count ``size`` more bytes of ``label``; ``ArtifactError`` past the limit."""
        with self._lock:
            self._used += size
            over = self._used > self.limit
        if over:
            raise ArtifactError(
                f"{label} exceeds the limit of {_size(self.limit)} for an instance's model data "
                f"(unpacked); raise {self._setting} if it is meant to be this large."
            )

    def copy(self, source: BinaryIO, out: BinaryIO, label: str) -> None:
        """Copy ``source`` to ``out`` chunk by chunk, taking each chunk before writing it."""
        while chunk := source.read(_CHUNK_BYTES):
            self.take(len(chunk), label)
            out.write(chunk)


def _size(count: int) -> str:
    if count >= GIB and count % GIB == 0:
        return f"{count // GIB} GiB"
    return f"{count} bytes"

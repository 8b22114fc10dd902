"""Where asynchronous requests and data capture read and write: ``s3://`` through boto3 (any
S3-compatible store via ``AWS_ENDPOINT_URL_S3``), an ``https://`` S3 object URL as the bucket and
key it names (``object_urls.py``; same client), and, as dockyard's local extension, ``file://``
under the server's allowed local roots (``artifacts/policy.py``).

Every call here is blocking; callers run them in a thread. Objects are read in chunks and written
from files, so a large payload is never held in memory whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from dockyard.artifacts.aws_clients import LazyClient
from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.policy import check_local_path
from dockyard.asyncinference.object_urls import NotAnObjectUrl, s3_object

CHUNK = 1 << 20


class StorageError(Exception):
    """A location that cannot be read or written; the message says which and why."""


@dataclass(frozen=True)
class Location:
    uri: str
    bucket: str = ""
    key: str = ""
    path: Path | None = None  # file://

    @classmethod
    def parse(cls, uri: str) -> Location:
        parts = _split(uri)
        if parts.scheme == "s3" and parts.netloc:
            return cls(uri, parts.netloc, parts.path.lstrip("/"))
        if parts.scheme == "file" and parts.path:
            return cls(uri, path=Path(urllib.parse.unquote(parts.path)))
        raise StorageError(f"{uri} is not an s3:// or file:// location")

    def join(self, *names: str) -> str:
        """The URI of ``names`` under this location (a prefix)."""
        parts = [self.uri.rstrip("/"), *(n.strip("/") for n in names if n.strip("/"))]
        return "/".join(parts)


def _split(uri: str) -> urllib.parse.SplitResult:
    try:
        return urllib.parse.urlsplit(uri)
    except ValueError as exc:  # an unclosed "[" of an IPv6 host, say
        raise StorageError(f"{uri} does not parse as a URL ({exc})") from None


class Storage:
    def __init__(self, region: str, allow_paths: tuple[Path, ...] | None) -> None:
        self._region = region
        self._allow = allow_paths
        self._clients = LazyClient("s3")

    def _s3(self) -> Any:
        return self._clients.get(self._region)

    def locate(self, uri: str) -> Location:
        """What ``uri`` names; ``StorageError`` when it names nothing this storage reads or writes
        (an ``https://`` URL that is not an S3 object URL, say)."""
        if _split(uri).scheme.lower() != "https":
            return Location.parse(uri)
        try:
            bucket, key = s3_object(uri, self._s3().meta.endpoint_url)
        except NotAnObjectUrl as exc:
            raise StorageError(str(exc)) from None
        return Location(uri, bucket, key)

    def _local(self, loc: Location) -> Path:
        assert loc.path is not None
        try:
            return check_local_path(loc.path, self._allow, "an asynchronous inference location")
        except ArtifactError as exc:
            raise StorageError(str(exc)) from None

    def exists(self, uri: str) -> bool:
        loc = self.locate(uri)
        if loc.path is not None:
            return self._local(loc).exists()
        try:
            self._s3().head_object(Bucket=loc.bucket, Key=loc.key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot read {uri}: {exc}") from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach {uri}: {exc}") from None

    def read(self, uri: str) -> Iterator[bytes]:
        """The object's bytes chunk by chunk; ``StorageError`` (before the first chunk) when it
        is missing or unreadable."""
        loc = self.locate(uri)
        if loc.path is not None:
            path = self._local(loc)
            try:
                handle: BinaryIO = path.open("rb")
            except OSError as exc:
                raise StorageError(f"cannot read {uri}: {exc.strerror}") from None
            return _chunks(handle)
        try:
            body = self._s3().get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot read {uri}: {exc}") from None
        return _chunks(body)

    def write_file(self, uri: str, source: Path, content_type: str | None = None) -> None:
        loc = self.locate(uri)
        if loc.path is not None:
            path = self._local(loc)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Whole or not at all: a reader never sees half a result.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dockyard-")
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, path)
            return
        extra = {"ContentType": content_type} if content_type else None
        try:
            with source.open("rb") as handle:
                self._s3().upload_fileobj(handle, loc.bucket, loc.key, ExtraArgs=extra)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot write {uri}: {exc}") from None

    def write_bytes(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        with tempfile.NamedTemporaryFile(prefix="dockyard-") as tmp:
            tmp.write(data)
            tmp.flush()
            self.write_file(uri, Path(tmp.name), content_type)


def _chunks(handle: Any) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk

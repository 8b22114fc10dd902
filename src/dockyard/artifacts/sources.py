"""Where model data comes from: one fetcher per URL scheme, behind ``Sources.locate``.

A location is either a local path (``file://`` URL or absolute path), read in place, or a
``RemoteObject`` (``s3://``, ``http(s)://``) that knows its current version and can download
itself. Versions are what the download cache is keyed by; a remote object with no version cannot
be cached. The S3 client is created once, lazily, so that ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` (read by botocore itself) and credentials are taken from the environment as
it is when model data is first needed.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from dockyard.artifacts.aws_clients import LazyClient
from dockyard.artifacts.errors import ArtifactError, download_error
from dockyard.artifacts.policy import (
    AccessPolicy,
    check_local_path,
    check_remote_host,
    http_opener,
)

# Per socket operation, not per download: a large model may take far longer than this in total.
_HTTP_TIMEOUT_SECONDS = 60
_CHUNK_BYTES = 1 << 20
_SUPPORTED = "s3://, https://, http://, file:// or an absolute path"


class RemoteObject(Protocol):
    """A downloadable object, as the cache sees it."""

    @property
    def url(self) -> str: ...

    @property
    def version(self) -> str | None:
        """Identifies the object's current content; None when the server offers nothing to tell."""

    def download(self, out: BinaryIO) -> str | None:
        """Write the object to ``out``; return the version of what was written."""


Location = Path | RemoteObject


class Sources:
    """Resolves model-data URLs under ``policy``; holds the per-store S3 client."""

    def __init__(self, region: str, policy: AccessPolicy) -> None:
        self._s3 = _S3(region)
        self._policy = policy
        self._http = http_opener(policy.allow_link_local)

    def locate(self, url: str, what: str) -> Location:
        """The object or local path ``url`` names; ``what`` ("model data", "code") is for errors.

        Local paths must be allowed by the policy and exist; remote objects are asked for their
        version (S3 HeadObject, HTTP HEAD) here, so a missing S3 object is reported now, not at
        download time.
        """
        scheme = _scheme(url)
        if scheme == "s3":
            return self._s3.stat(url, what)
        if scheme in ("http", "https"):
            if not self._policy.allow_link_local:
                check_remote_host(url, what)
            return _stat_http(url, what, self._http)
        return self._existing_local_path(url, what)

    def list_prefix(self, url: str, what: str) -> Path | list[tuple[str, RemoteObject]]:
        """Every object under an S3 key prefix, with its key relative to the prefix; or a local
        directory (``file://`` or absolute path) to copy."""
        scheme = _scheme(url)
        if scheme == "s3":
            return self._s3.list_prefix(url, what)
        if scheme in ("http", "https"):
            raise ArtifactError(
                f"Cannot list {what} under {url}: "
                "S3Prefix works with s3:// URIs and local directories."
            )
        path = self._existing_local_path(url, what)
        if not path.is_dir():
            raise ArtifactError(f"{what.capitalize()} prefix {url} is not a directory.")
        return path

    def under_prefix(self, prefix: str, relative: str, what: str) -> Location:
        """The object ``relative`` (a multi-model endpoint's TargetModel, already normalised)
        names under ``prefix``, its name taken literally (``%2e%2e`` is not ``..``). A local one
        must be a file whose real path, symlinks followed, is inside the prefix's."""
        root = _local_path(prefix)
        if root is None:
            # An HTTP server would decode %xx in the path: quote so that the name stays literal.
            name = urllib.parse.quote(relative) if _scheme(prefix) in ("http", "https") else relative
            return self.locate(prefix + name, what)
        check_local_path(root, self._policy.allow_paths, what)
        real_root = os.path.realpath(root)
        real = os.path.realpath(os.path.join(real_root, relative))
        if os.path.commonpath([real, real_root]) != real_root:
            raise ArtifactError(f"{relative} leads outside the {what} prefix {prefix} (through a symlink).")
        if os.path.isdir(real):
            raise ArtifactError(f"{relative} under {prefix} is a directory, not a model archive (.tar.gz).")
        return self._existing_local_path(real, what)

    def _existing_local_path(self, url: str, what: str) -> Path:
        path = _local_path(url)
        if path is None:
            raise ArtifactError(f'Unsupported {what} location "{url}": use {_SUPPORTED}.')
        # Before the existence check: a refusal must not tell whether a forbidden path exists.
        check_local_path(path, self._policy.allow_paths, what)
        if not path.exists():
            raise ArtifactError(f"Could not find {what} at {url}: no such file or directory.")
        return path


def check_local_location(url: str, roots: tuple[Path, ...] | None, what: str) -> None:
    """If ``url`` is a local path, ``ArtifactError`` unless ``check_local_path`` allows it."""
    path = _local_path(url)
    if path is not None:
        check_local_path(path, roots, what)


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


def _local_path(url: str) -> Path | None:
    if url.lower().startswith("file:"):
        parts = urllib.parse.urlsplit(url)
        # file://host/... names another machine; only the local one is readable.
        if parts.netloc not in ("", "localhost"):
            return None
        path = Path(urllib.request.url2pathname(parts.path))
        return path if path.is_absolute() else None
    if "://" not in url and os.path.isabs(url):
        return Path(url)
    return None


# --- S3 -------------------------------------------------------------------------------------


class _S3:
    def __init__(self, region: str) -> None:
        self._region = region
        self._clients = LazyClient("s3")

    def client(self) -> Any:
        return self._clients.get(self._region)

    def stat(self, url: str, what: str) -> S3Object:
        bucket, key = _split_s3(url, what)
        if not key or key.endswith("/"):
            raise ArtifactError(
                f"{what.capitalize()} location {url} names an S3 prefix, not an object."
            )
        try:
            head = self.client().head_object(Bucket=bucket, Key=key)
        except ClientError as e:
            raise download_error(what, url, self._explain(e, bucket, key)) from e
        except BotoCoreError as e:
            raise download_error(what, url, str(e)) from e
        return S3Object(self.client(), bucket, key, what, head["ETag"])

    def list_prefix(self, url: str, what: str) -> list[tuple[str, RemoteObject]]:
        bucket, prefix = _split_s3(url, what)
        if prefix and not prefix.endswith("/"):
            raise ArtifactError(
                f"S3Prefix {url} must end with '/': "
                "SageMaker only accepts key name prefixes that do."
            )
        found: list[tuple[str, RemoteObject]] = []
        try:
            pages = (
                self.client()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=bucket, Prefix=prefix)
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    key = entry["Key"]
                    # "folder/" keys are the console's empty-folder markers, not files.
                    if not key.endswith("/"):
                        obj = S3Object(self.client(), bucket, key, what, entry["ETag"])
                        found.append((key[len(prefix) :], obj))
        except ClientError as e:
            raise download_error(what, url, _client_error_text(e)) from e
        except BotoCoreError as e:
            raise download_error(what, url, str(e)) from e
        if not found:
            raise download_error(what, url, "there are no objects under this prefix")
        return found

    def _explain(self, error: ClientError, bucket: str, key: str) -> str:
        """HeadObject errors carry no body ("404 (Not Found)"); a GET names the problem
        (NoSuchKey, NoSuchBucket, AccessDenied)."""
        try:
            self.client().get_object(Bucket=bucket, Key=key)["Body"].close()
        except ClientError as named:
            return _client_error_text(named)
        except BotoCoreError:
            pass
        return _client_error_text(error)


@dataclass(frozen=True)
class S3Object:
    client: Any = field(repr=False, compare=False)
    bucket: str
    key: str
    what: str
    etag: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def version(self) -> str | None:
        # The ETag names content, which is what a cache needs; VersionIds differ for equal bytes.
        return f"etag {self.etag}"

    def download(self, out: BinaryIO) -> str | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
            for chunk in response["Body"].iter_chunks(_CHUNK_BYTES):
                out.write(chunk)
        except ClientError as e:
            raise download_error(self.what, self.url, _client_error_text(e)) from e
        except BotoCoreError as e:
            raise download_error(self.what, self.url, str(e)) from e
        # The GET's own ETag: right even if the object changed since HeadObject.
        return f"etag {response['ETag']}"


def _split_s3(url: str, what: str) -> tuple[str, str]:
    # Not urlsplit: S3 keys may contain '?' and '#'.
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ArtifactError(f"{what.capitalize()} location {url} names no S3 bucket.")
    return bucket, key


def _client_error_text(error: ClientError) -> str:
    details = error.response.get("Error", {})
    code = details.get("Code") or "Error"
    message = details.get("Message")
    return f"{code} ({message})" if message else code


# --- HTTP(S) --------------------------------------------------------------------------------


def _stat_http(url: str, what: str, opener: urllib.request.OpenerDirector) -> HttpObject:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with opener.open(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:
            version = _http_version(response.headers)
    except (OSError, http.client.HTTPException):
        # Some servers refuse HEAD (pre-signed S3 URLs are signed for GET only). Without a version
        # the object is simply not cached; a real problem is reported by the GET.
        version = None
    return HttpObject(opener, url, what, version)


@dataclass(frozen=True)
class HttpObject:
    opener: urllib.request.OpenerDirector = field(repr=False, compare=False)
    url: str
    what: str
    version: str | None

    def download(self, out: BinaryIO) -> str | None:
        try:
            with self.opener.open(self.url, timeout=_HTTP_TIMEOUT_SECONDS) as response:
                shutil.copyfileobj(response, out, _CHUNK_BYTES)
                return _http_version(response.headers)
        except urllib.error.HTTPError as e:
            raise download_error(self.what, self.url, f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise download_error(self.what, self.url, str(e.reason)) from e
        except (OSError, http.client.HTTPException) as e:
            raise download_error(self.what, self.url, str(e) or type(e).__name__) from e


def _http_version(headers: http.client.HTTPMessage) -> str | None:
    if etag := headers.get("ETag"):
        return f"etag {etag}"
    if modified := headers.get("Last-Modified"):
        return f"last-modified {modified}"
    return None

"""Which S3 object an ``https://`` URL names. InvokeEndpointAsync's ``InputLocation`` may be one
(botocore's pattern is ``^(https|s3)://…``), and it is read as that bucket and key through the
server's own S3 client, exactly like ``s3://BUCKET/KEY``. The URL itself is never fetched, so an
``https://`` input cannot make the server reach anything but its S3 (no server-side request
forgery). The shapes accepted — anything else is refused with the reason:

* virtual-hosted: ``https://BUCKET.s3.amazonaws.com/KEY``, ``https://BUCKET.s3.REGION.amazonaws.com/KEY``,
  ``https://BUCKET.s3-REGION.amazonaws.com/KEY`` (also ``s3.dualstack.REGION``, ``amazonaws.com.cn``);
* path style: ``https://s3.amazonaws.com/BUCKET/KEY``, ``https://s3.REGION.amazonaws.com/BUCKET/KEY``,
  ``https://s3-REGION.amazonaws.com/BUCKET/KEY``;
* path style on the configured S3 endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, an
  S3-compatible server): ``https://HOST:PORT/BUCKET/KEY`` where HOST and PORT are the endpoint's,
  whatever its scheme (a loopback endpoint is often ``http://``); a URL without a port matches an
  endpoint on its scheme's default port.

The key is decoded as S3 decodes an object URL's path: ``%XX`` escapes, and ``+`` is a space (a
literal plus is ``%2B``). A query string (a presigned URL), a fragment or user information is
refused: the server reads with its own credentials, never with a signature in the URL.
"""

from __future__ import annotations

import re
import urllib.parse

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_AWS_HOST = re.compile(
    rf"(?:(?P<bucket>.+)\.)?s3(?:[.-](?:dualstack\.)?{_REGION})?\.amazonaws\.com(?:\.cn)?"
)
# Every bucket S3 (legacy us-east-1 names included) or an S3-compatible server accepts; a
# virtual-hosted bucket is further limited by DNS.
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")
_SHAPES = "s3://BUCKET/KEY, https://BUCKET.s3.REGION.amazonaws.com/KEY or https://s3.REGION.amazonaws.com/BUCKET/KEY"


class NotAnObjectUrl(ValueError):
    """An https:// URL that names no S3 object; the message says why and what is accepted."""


def s3_object(url: str, endpoint: str | None) -> tuple[str, str]:
    """The (bucket, key) that ``url`` names; ``endpoint`` is the URL of the S3 endpoint the server's
    client talks to (its path-style URLs are accepted too)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unclosed "[" of an IPv6 host, say
        raise _refused(url, endpoint, f"it does not parse as a URL ({exc})") from None
    try:
        port = parts.port
    except ValueError:
        raise _refused(url, endpoint, "its port is not a number") from None
    if parts.scheme.lower() != "https":
        raise _refused(url, endpoint, "it is not an https:// URL")
    if "?" in url:
        raise _refused(url, endpoint, "it has a query string (a presigned URL?); the server reads the object "
                                      "with its own credentials, so give the URL without it")
    if "#" in url:
        raise _refused(url, endpoint, "it has a fragment (#…)")
    if "@" in parts.netloc:
        raise _refused(url, endpoint, "it carries user information (user@host)")
    host = parts.hostname or ""
    path = parts.path
    if endpoint is not None and _same_server(host, port, endpoint):
        prefix = urllib.parse.urlsplit(endpoint).path.rstrip("/")
        if prefix and not path.startswith(prefix + "/"):
            raise _refused(url, endpoint, f"its path is not under the configured endpoint's {prefix}/")
        return _path_style(url, endpoint, path[len(prefix):])
    aws = _AWS_HOST.fullmatch(host)
    if aws is None:
        raise _refused(url, endpoint, f"{parts.netloc} is not an S3 endpoint")
    if port not in (None, 443):
        raise _refused(url, endpoint, f"S3 answers https on port 443, not {port}")
    if aws["bucket"] is None:
        return _path_style(url, endpoint, path)
    return _checked(url, endpoint, aws["bucket"], path[1:])


def _same_server(host: str, port: int | None, endpoint: str) -> bool:
    configured = urllib.parse.urlsplit(endpoint)
    default = {"http": 80, "https": 443}.get(configured.scheme.lower())
    configured_port = configured.port or default
    return host == (configured.hostname or "") and (port or default) == configured_port


def _path_style(url: str, endpoint: str | None, path: str) -> tuple[str, str]:
    bucket, _, key = path[1:].partition("/")
    return _checked(url, endpoint, urllib.parse.unquote(bucket), key)


def _checked(url: str, endpoint: str | None, bucket: str, raw_key: str) -> tuple[str, str]:
    if not _BUCKET.fullmatch(bucket):
        raise _refused(url, endpoint, f"{bucket!r} is not a bucket name" if bucket else "it names no bucket")
    # S3's decoding of an object URL's path (form encoding: "+" is a space).
    key = urllib.parse.unquote_plus(raw_key)
    if not key:
        raise _refused(url, endpoint, f"it names bucket {bucket} but no object key")
    return bucket, key


def _refused(url: str, endpoint: str | None, reason: str) -> NotAnObjectUrl:
    shapes = _SHAPES
    if endpoint is not None and _AWS_HOST.fullmatch(urllib.parse.urlsplit(endpoint).hostname or "") is None:
        netloc = urllib.parse.urlsplit(endpoint).netloc
        shapes = f"{_SHAPES}, or https://{netloc}/BUCKET/KEY on the configured S3 endpoint"
    return NotAnObjectUrl(f"{url} is not an S3 object URL: {reason}. Use {shapes}.")

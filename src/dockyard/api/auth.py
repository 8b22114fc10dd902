"""SigV4 verification of every request, when the server has credentials (``--credentials FILE``).

The expected signature is computed with botocore's own signer (``SigV4Auth``: canonical request,
string to sign, signing key) over the request as it arrived — the client's signed headers, its
date and its credential scope — and compared in constant time. Answers are what AWS answers, all
403 (never retried by boto3): no ``Authorization`` → ``MissingAuthenticationTokenException``,
unknown key, or a key with a session token signed without that token (``X-Amz-Security-Token``)
→ ``UnrecognizedClientException``, wrong signature or a date outside the 5-minute window →
``InvalidSignatureException``.

The credentials file is an INI file like ``~/.aws/credentials``: each section holds one
``aws_access_key_id`` and ``aws_secret_access_key``, and optionally an ``aws_session_token``;
the section names are free.

A request without ``Authorization`` may instead be authorized by the console's sign-in session
(``console/signin.py``), which the middleware is handed as ``session``: this module knows nothing
of cookies, and a request that carries a signature is always judged by its signature.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from multidict import CIMultiDictProxy

from dockyard import errors
from dockyard.api.bodies import VERIFIED_BODY, read_capped
from dockyard.api.control_plane import MAX_REQUEST_BYTES
from dockyard.api.errors import Handler, is_control_plane

log = logging.getLogger(__name__)

SERVICE = "sagemaker"  # boto3 signs both the control plane and the runtime API as "sagemaker"
# ...and Application Auto Scaling's requests (X-Amz-Target prefix → signing name) with its own.
SIGNING_NAMES = {"AnyScaleFrontendService": "application-autoscaling"}
MAX_SKEW = dt.timedelta(minutes=5)  # AWS refuses a signature dated more than 5 minutes off
OPEN_PATHS = frozenset({"/_dockyard/health"})
"""Answered unsigned: a liveness probe says only "ok" (load balancers and `dockyard` itself probe it)."""

_ALGORITHM = "AWS4-HMAC-SHA256"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP = re.compile(r"\d{8}T\d{6}Z")
_INVALID_TOKEN = "The security token included in the request is invalid."
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Credential:
    """One section of the credentials file: the secret of an access key id, and the session token
    that must come with every request it signs (temporary credentials), if it has one."""

    secret: str
    session_token: str | None = None


def load_credentials(path: Path) -> dict[str, Credential]:
    """access key id → its credential, from an INI file of ``aws_access_key_id``/``aws_secret_access_key``
    (and optional ``aws_session_token``) sections. A file that cannot be used is a ``ValueError``
    naming the problem."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(), source=str(path))
    except (OSError, configparser.Error) as exc:
        raise ValueError(f"cannot read credentials file {path}: {exc}") from None
    keys = {}
    for name in parser.sections():
        section = parser[name]
        akid, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if not akid or not secret:
            raise ValueError(f"credentials file {path}: section [{name}] needs aws_access_key_id and aws_secret_access_key")
        token = section.get("aws_session_token", "").strip() or None
        keys[akid.strip()] = Credential(secret.strip(), token)
    if not keys:
        raise ValueError(f"credentials file {path} holds no [section] with aws_access_key_id and aws_secret_access_key")
    return keys


def same(given: str, expected: str) -> bool:
    """Whether two secrets are equal, compared in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticate(keys: Mapping[str, Credential], akid: str, secret: str, session_token: str = "") -> bool:
    """Whether ``secret`` (and the session token, for a key that has one) is that of ``akid``,
    in constant time: an unknown key costs the same comparison, so timing tells no key apart."""
    credential = keys.get(akid)
    expected = credential or Credential(secrets.token_urlsafe(32))
    secret_ok = same(secret, expected.secret)
    token_ok = expected.session_token is None or same(session_token, expected.session_token)
    return credential is not None and secret_ok and token_ok


def _error(code: str, message: str, status: int = 403) -> errors.AwsError:
    return errors.AwsError(code, message, status=status)


class _Verifier(SigV4Auth):
    """botocore's signer, fed the request as the client signed it: exactly its signed headers,
    and the hash of the body we received."""

    def __init__(self, credentials: Credentials, service: str, region: str, body_sha256: str) -> None:
        super().__init__(credentials, service, region)
        self._body_sha256 = body_sha256

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers

    def payload(self, request: AWSRequest) -> str:
        return self._body_sha256


def _parse_stamp(stamp: str) -> dt.datetime:
    # By position, not strptime: this runs on every request, and strptime costs more than it does.
    if not _STAMP.fullmatch(stamp):
        raise _error("IncompleteSignatureException", "Authorization header requires existence of a valid 'X-Amz-Date' header.", 400)
    try:
        return dt.datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]),
                           int(stamp[13:15]), tzinfo=dt.timezone.utc)
    except ValueError:  # e.g. month 13
        raise _error("IncompleteSignatureException", f"X-Amz-Date {stamp} is not a valid date.", 400) from None


def _authorization_fields(value: str) -> dict[str, str]:
    algorithm, _, rest = value.partition(" ")
    if algorithm != _ALGORITHM:
        raise _error("IncompleteSignatureException", f"Unsupported authorization algorithm {algorithm!r}; use {_ALGORITHM}.", 400)
    fields = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise _error(
            "IncompleteSignatureException",
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing) + f" Authorization={value}",
            400,
        )
    return fields


def verify(
    method: str,
    raw_path: str,
    headers: CIMultiDictProxy[str],
    body_sha256: str | None,
    keys: Mapping[str, Credential],
    now: dt.datetime,
) -> str:
    """The access key id that signed this request, or an ``AwsError`` saying what AWS would say.

    ``body_sha256`` None checks all but the signature itself: for a body too large to be read,
    which the handler refuses without acting on it."""
    authorization = headers.get("Authorization")
    if not authorization:
        raise _error("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = _authorization_fields(authorization)
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise _error("IncompleteSignatureException", f"Credential should have 5 parts separated by '/': {fields['Credential']}", 400)
    akid, day, region, service, terminator = scope
    credential = keys.get(akid)
    if credential is None:
        raise _error("UnrecognizedClientException", _INVALID_TOKEN)
    # Temporary credentials: the key is only valid together with its token (AWS's answer to a
    # missing or wrong one is the unknown key's).
    if credential.session_token is not None and not same(headers.get("X-Amz-Security-Token", ""), credential.session_token):
        raise _error("UnrecognizedClientException", _INVALID_TOKEN)
    stamp = headers.get("X-Amz-Date", "")
    signed_at = _parse_stamp(stamp)
    if signed_at < now - MAX_SKEW:
        raise _error("InvalidSignatureException", f"Signature expired: {stamp} is now earlier than "
                     f"{(now - MAX_SKEW).strftime(_DATE_FORMAT)} ({now.strftime(_DATE_FORMAT)} - 5 min.)")
    if signed_at > now + MAX_SKEW:
        raise _error("InvalidSignatureException", f"Signature not yet current: {stamp} is still later than "
                     f"{(now + MAX_SKEW).strftime(_DATE_FORMAT)} ({now.strftime(_DATE_FORMAT)} + 5 min.)")
    signing_name = SIGNING_NAMES.get(headers.get("X-Amz-Target", "").partition(".")[0], SERVICE)
    if service != signing_name or terminator != "aws4_request":
        raise _error("InvalidSignatureException", f"Credential should be scoped to correct service: '{signing_name}'.")
    if day != stamp[:8]:
        raise _error("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
    if body_sha256 is None:
        return akid
    claimed = headers.get("X-Amz-Content-SHA256")
    if claimed is not None and claimed != body_sha256:
        raise _error("InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed.")

    signed = HTTPHeaders()
    for name in fields["SignedHeaders"].split(";"):
        for value in headers.getall(name, []):
            signed[name] = value
    request = AWSRequest(method=method, url=f"http://{headers.get('Host', '')}{raw_path}", headers=signed)
    request.context["timestamp"] = stamp
    signer = _Verifier(Credentials(akid, credential.secret), service, region, body_sha256)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise _error("InvalidSignatureException", _BAD_SIGNATURE)
    return akid


def middleware(keys: Mapping[str, Credential], max_payload: int, open_paths: frozenset[str] = OPEN_PATHS,
               session: Callable[[web.Request], bool] | None = None) -> Middleware:
    """An aiohttp middleware that refuses (403) any request not signed by one of ``keys``.

    ``session``, if given, is asked first about a request without ``Authorization``: True lets it
    through unsigned (the console's signed-in browser), False leaves it to the signature check,
    and it raises its own refusal for a console request it will not let through.

    The signature covers the body's SHA-256, so the body is read here — once, capped as its
    handler caps it — and kept under ``VERIFIED_BODY`` for the handler. A body declared larger
    than the cap is checked up to its signature and left to the handler, which refuses it (413)
    without acting on it. Refusals are ``AwsError``s: the protocol's error middleware answers them.
    """

    @web.middleware
    async def sigv4(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths:
            return await handler(request)
        if session is not None and "Authorization" not in request.headers and session(request):
            return await handler(request)
        if is_control_plane(request):
            limit, too_large = MAX_REQUEST_BYTES, errors.request_too_large
        else:
            limit, too_large = max_payload, errors.payload_too_large
        length = request.content_length
        oversized = length is not None and length > limit
        body = b"" if oversized else await read_capped(request, limit, too_large)
        try:
            verify(request.method, request.raw_path, request.headers,
                   None if oversized else hashlib.sha256(body).hexdigest(), keys, dt.datetime.now(dt.timezone.utc))
        except errors.AwsError as exc:
            log.info("refused %s %s from %s: %s", request.method, request.path, request.remote, exc.code)
            raise
        if not oversized:
            request[VERIFIED_BODY] = body
        return await handler(request)

    return sigv4

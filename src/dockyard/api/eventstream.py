"""AWS event-stream frames (``application/vnd.amazon.eventstream``) for
InvokeEndpointWithResponseStream: ``PayloadPart`` events and the exception events that end a
stream (``ModelStreamError``, ``InternalStreamFailure``).

A frame is ``[total length u32][headers length u32][prelude CRC32][headers][payload][message
CRC32]``, big-endian; every header here is a string (type 7): ``[name length u8][name][7][value
length u16][value]``. botocore decodes these with ``botocore.eventstream``; it has no encoder.
"""

from __future__ import annotations

import json
import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"
# botocore refuses a frame whose payload is over 24 MiB; a larger chunk goes out as several parts.
MAX_PAYLOAD = 16 * 1024 * 1024

_PRELUDE = struct.Struct("!II")
_CRC = struct.Struct("!I")
_STRING = 7


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    return b"%c%b%c%b%b" % (len(encoded_name), encoded_name, _STRING, struct.pack("!H", len(encoded_value)), encoded_value)


def _headers(*pairs: tuple[str, str]) -> bytes:
    return b"".join(_header(name, value) for name, value in pairs)


# The headers of every PayloadPart are the same: encoded once.
_PAYLOAD_PART = _headers(
    (":message-type", "event"), (":event-type", "PayloadPart"), (":content-type", "application/octet-stream")
)


def frame(headers: bytes, payload: bytes) -> bytes:
    """One event-stream message of encoded ``headers`` and ``payload``."""
    prelude = _PRELUDE.pack(16 + len(headers) + len(payload), len(headers))
    prelude += _CRC.pack(zlib.crc32(prelude))
    crc = zlib.crc32(payload, zlib.crc32(headers, zlib.crc32(prelude)))
    return b"".join((prelude, headers, payload, _CRC.pack(crc)))


def payload_parts(chunk: bytes) -> bytes:
    """``chunk`` as PayloadPart events: one, unless it is over ``MAX_PAYLOAD``."""
    if len(chunk) <= MAX_PAYLOAD:
        return frame(_PAYLOAD_PART, chunk)
    view = memoryview(chunk)
    return b"".join(frame(_PAYLOAD_PART, bytes(view[i : i + MAX_PAYLOAD])) for i in range(0, len(chunk), MAX_PAYLOAD))


def exception(kind: str, message: str, error_code: str | None = None) -> bytes:
    """An exception event (``ModelStreamError``, ``InternalStreamFailure``): boto3 raises it as
    ``EventStreamError`` with this code, message and, for ModelStreamError, ``ErrorCode``."""
    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    headers = _headers((":message-type", "exception"), (":exception-type", kind), (":content-type", "application/json"))
    return frame(headers, json.dumps(body).encode())

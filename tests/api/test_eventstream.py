"""The event-stream encoder, checked by botocore's own decoder (prelude and message CRCs
included): PayloadPart events, a chunk over the frame limit split in parts, exception events."""

from __future__ import annotations

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from dockyard.api import eventstream


def decode(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_payload_part_decodes_to_its_bytes():
    (message,) = decode(eventstream.payload_parts(b"\x00token\xff"))
    assert message.headers == {
        ":message-type": "event", ":event-type": "PayloadPart", ":content-type": "application/octet-stream"}
    assert message.payload == b"\x00token\xff"


def test_a_chunk_over_the_frame_limit_goes_out_in_parts(monkeypatch):
    monkeypatch.setattr(eventstream, "MAX_PAYLOAD", 4)
    messages = decode(eventstream.payload_parts(b"0123456789"))
    assert [m.payload for m in messages] == [b"0123", b"4567", b"89"]


def test_exception_event():
    (message,) = decode(eventstream.exception("ModelStreamError", "the container died", "StreamBroken"))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(message.payload) == {"Message": "the container died", "ErrorCode": "StreamBroken"}
    (internal,) = decode(eventstream.exception("InternalStreamFailure", "bug"))
    assert json.loads(internal.payload) == {"Message": "bug"}


def test_a_corrupted_frame_fails_its_checksum():
    frame = bytearray(eventstream.payload_parts(b"hello"))
    frame[-6] ^= 1  # a payload byte
    with pytest.raises(ChecksumMismatch):
        decode(bytes(frame))

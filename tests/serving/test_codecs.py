"""Content negotiation, default codecs and handler-signature detection, in-process."""

from __future__ import annotations

import numpy as np
import pytest

from dockyard.serving import codecs
from dockyard.serving.errors import BadRequest
from dockyard.serving.handlers import takes_context

SUPPORTED = (codecs.JSON, codecs.CSV, codecs.NPY)


@pytest.mark.parametrize(
    "accept, expected",
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("Text/CSV; charset=utf-8", "text/csv"),
        ("text/html, application/x-npy", "application/x-npy"),
        ("application/json;q=0.2, text/csv;q=0.8", "text/csv"),
        ("text/csv;q=0, application/json", "application/json"),
        ("text/*", "text/csv"),
        ("text/html, */*;q=0.1", "application/json"),
        ("text/html", None),
    ],
)
def test_negotiate(accept, expected):
    assert codecs.negotiate(accept, SUPPORTED, "application/json") == expected


def test_negotiate_for_a_user_output_fn_passes_any_type():
    assert codecs.negotiate("text/html;q=0.5, image/png", None, "application/json") == "image/png"
    assert codecs.negotiate("*/*", None, "text/csv") == "text/csv"


def test_media_type():
    assert codecs.media_type("") == "application/json"
    assert codecs.media_type(" Application/JSON ; charset=utf-8") == "application/json"


def test_csv_round_trip():
    rows = codecs.decode_csv(b"1,2.5\n3,4\n")
    np.testing.assert_array_equal(rows, [[1.0, 2.5], [3.0, 4.0]])
    assert codecs.encode_csv(rows) == b"1.0,2.5\n3.0,4.0\n"
    assert codecs.encode_csv(np.array([0, 2])) == b"0\n2\n"


def test_npy_refuses_object_arrays():
    body = codecs.encode_npy(np.arange(3))
    np.testing.assert_array_equal(codecs.decode_npy(body), np.arange(3))
    with pytest.raises(BadRequest):
        codecs.decode_npy(np.lib.format.magic(1, 0) + b"v\x00{'descr': '|O', 'shape': (1,), }")


def test_json_encodes_numpy_values():
    encoded = codecs.encode_json({"label": np.int64(2), "p": np.array([0.5])})
    assert encoded == b'{"label": 2, "p": [0.5]}'


def test_context_argument_is_detected_from_the_signature():
    assert not takes_context(lambda data, model: None, 2)
    assert takes_context(lambda data, model, context: None, 2)
    assert takes_context(lambda data, model, *rest: None, 2)
    assert takes_context(lambda model_dir, context=None: None, 1)
    assert not takes_context(lambda model, data, content_type, accept: None, 4)

"""The request formats the framework containers take, decoded as the containers decode them:
LIBSVM rows for XGBoost, and the TensorFlow Serving container's mapping of JSON, JSON lines and
CSV bodies to TensorFlow Serving requests (those tests need tensorflow, which the container's
module imports)."""

from __future__ import annotations

import pytest
from needs import require

from dockyard.serving.codecs import decode_libsvm
from dockyard.serving.errors import BadRequest


@pytest.fixture(scope="module")
def tfs():
    """The TensorFlow Serving container's module (it imports tensorflow)."""
    require("tensorflow")
    from dockyard.serving.frameworks import tensorflow

    return tensorflow


def test_libsvm_rows_ignore_labels_and_qids():
    matrix = decode_libsvm(b"1 0:1.5 3:2\n\n0 qid:7 1:-1\n")
    assert matrix.shape == (2, 4)
    assert matrix.toarray().tolist() == [[1.5, 0, 0, 2], [0, -1, 0, 0]]


@pytest.mark.parametrize("body", [b"", b"1 a:2", b"1 -1:2"])
def test_libsvm_rejects_what_is_not_libsvm(body):
    with pytest.raises(BadRequest):
        decode_libsvm(body)


@pytest.mark.parametrize(("body", "media", "tfs_request"), [
    (b'{"instances": [[1, 2]]}', "application/json", {"instances": [[1, 2]]}),
    (b'{"inputs": {"a": [1]}, "signature_name": "s"}', "application/json", {"inputs": {"a": [1]}, "signature_name": "s"}),
    (b"[[1, 2], [3, 4]]", "application/json", {"instances": [[1, 2], [3, 4]]}),
    (b"[1, 2]", "application/json", {"instances": [[1, 2]]}),
    (b'{"a": 1}', "application/json", {"instances": [{"a": 1}]}),
    (b"[1, 2]\n[3, 4]\n", "application/jsonlines", {"instances": [[1, 2], [3, 4]]}),
    (b"1,2.5\n3,4\n", "text/csv", {"instances": [[1, 2.5], [3, 4]]}),
    (b"7\n8\n", "text/csv", {"instances": [7, 8]}),
    (b'"a",b\n', "text/csv", {"instances": [["a", "b"]]}),
])
def test_bodies_become_tensorflow_serving_requests(tfs, body, media, tfs_request):
    assert tfs.request_from_body(body, media) == tfs_request


def test_a_body_that_is_not_json_is_a_400(tfs):
    with pytest.raises(tfs.TFSError) as info:
        tfs.request_from_body(b"{not json", "application/json")
    assert info.value.status == 400

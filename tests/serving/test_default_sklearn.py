"""The scikit-learn server with no user code: default codecs, negotiation and errors over HTTP."""

from __future__ import annotations

import io
import json
import signal

import numpy as np
import pytest
import requests


@pytest.fixture(scope="module")
def server(iris, launch_server, tmp_path_factory):
    server = launch_server(iris.model_dir, tmp_path_factory.mktemp("logs"))
    yield server
    server.stop(signal.SIGKILL)


def csv_of(rows: np.ndarray) -> str:
    return "\n".join(",".join(map(str, row)) for row in rows)


def npy_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_csv_in_json_out(server, iris):
    response = server.post(csv_of(iris.X[:10]), "text/csv", "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == iris.model.predict(iris.X[:10]).tolist()


def test_single_csv_row_is_one_sample(server, iris):
    response = server.post(csv_of(iris.X[100:101]), "text/csv; charset=utf-8")
    assert response.json() == iris.model.predict(iris.X[100:101]).tolist()


def test_json_in_csv_out(server, iris):
    response = server.post(json.dumps(iris.X[:5].tolist()), accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    expected = iris.model.predict(iris.X[:5])
    assert [int(line) for line in response.text.splitlines()] == expected.tolist()


def test_json_instances_in_npy_out(server, iris):
    body = json.dumps({"instances": iris.X[45:55].tolist()})
    response = server.post(body, accept="application/x-npy")
    assert response.headers["Content-Type"] == "application/x-npy"
    predicted = np.load(io.BytesIO(response.content))
    np.testing.assert_array_equal(predicted, iris.model.predict(iris.X[45:55]))


def test_npy_in_json_out(server, iris):
    response = server.post(npy_of(iris.X[::7]), "application/x-npy")
    assert response.status_code == 200, response.text
    assert response.json() == iris.model.predict(iris.X[::7]).tolist()


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_missing_content_type_and_accept_mean_json(server, iris, accept):
    response = server.post(json.dumps(iris.X[:3].tolist()), None, accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == iris.model.predict(iris.X[:3]).tolist()


def test_accept_list_takes_the_preferred_supported_type(server, iris):
    accept = "text/html, application/x-npy;q=0.5, text/csv;q=0.9"
    response = server.post(csv_of(iris.X[:2]), "text/csv", accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"


def test_unsupported_content_type_is_415(server):
    response = server.post("hello", "text/plain")
    assert response.status_code == 415
    assert "text/plain" in response.text
    assert "application/json, text/csv, application/x-npy" in response.text


def test_unsupported_accept_is_406(server, iris):
    response = server.post(csv_of(iris.X[:1]), "text/csv", "text/html, application/xml;q=0.2")
    assert response.status_code == 406
    assert "text/html" in response.text and "text/csv" in response.text


@pytest.mark.parametrize(
    "content_type, body, problem",
    [
        ("text/csv", "1,2,x,4", "not numeric CSV"),
        ("text/csv", "", "empty"),
        ("application/json", "[[1, 2,", "not valid JSON"),
        ("application/json", '{"rows": [[1, 2, 3, 4]]}', '"instances"'),
        ("application/json", "[[1, 2], [3]]", "rectangular"),
        ("application/x-npy", b"not an npy file", "not a .npy array"),
    ],
)
def test_malformed_body_is_400(server, content_type, body, problem):
    response = server.post(body, content_type)
    assert response.status_code == 400
    assert problem in response.text


def test_model_error_is_500_and_the_server_keeps_serving(server, iris):
    # Three features where the model wants four: sklearn raises ValueError in predict.
    response = server.post("1,2,3", "text/csv")
    assert response.status_code == 500
    assert response.text.startswith("ValueError: ")
    assert requests.get(server.url + "/ping", timeout=5).status_code == 200
    assert server.post(csv_of(iris.X[:1]), "text/csv").status_code == 200


def test_ping_and_execution_parameters(server):
    ping = requests.get(server.url + "/ping", timeout=5)
    assert ping.status_code == 200 and ping.content == b""
    parameters = requests.get(server.url + "/execution-parameters", timeout=5)
    assert parameters.json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_body_over_the_payload_limit_is_413(server):
    response = server.post(b"1," * (3 * 1024 * 1024 + 1), "text/csv")
    assert response.status_code == 413

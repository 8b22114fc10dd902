"""User handlers in inference.py: overrides, the context argument, transform_fn, user errors."""

from __future__ import annotations

import io
import json
import shutil
import signal

import numpy as np
import pytest

USER_CODE = """
import json

import numpy as np


class Teapot(Exception):
    status_code = 418


def input_fn(input_data, content_type):
    # JSON and CSV bodies reach a user input_fn as str, as in the SageMaker inference toolkit.
    if not isinstance(input_data, str):
        raise TypeError(f"{content_type} body arrived as {type(input_data).__name__}")
    if content_type == "text/csv":
        return np.array([[float(v) for v in line.split(",")] for line in input_data.splitlines()])
    return np.array(json.loads(input_data))


def predict_fn(data, model, context):
    if context.custom_attributes == "fail":
        raise ValueError("asked to fail")
    if context.custom_attributes == "teapot":
        raise Teapot("short and stout")
    return model.predict_proba(data)


def output_fn(prediction, accept):
    body = json.dumps({"probabilities": prediction.tolist(), "accept": accept})
    return body, "application/vnd.dockyard+json"
"""

TRANSFORM_CODE = """
import json

from helper import describe


def model_fn(model_dir, context):
    return {"model_dir": model_dir, "from_context": context.system_properties["model_dir"]}


def transform_fn(model, input_data, content_type, accept):
    return json.dumps({"model": model, "input": describe(input_data), "content_type": content_type})
"""


@pytest.fixture(scope="module")
def user_server(iris, launch_server, tmp_path_factory):
    # The code ships inside the model directory, as the SageMaker SDK repacks it: <model_dir>/code.
    model_dir = tmp_path_factory.mktemp("user-model")
    shutil.copy(iris.model_dir / "model.joblib", model_dir)
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(USER_CODE)
    server = launch_server(model_dir, tmp_path_factory.mktemp("logs"))
    yield server
    server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def transform_server(launch_server, tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    (source / "serve_me.py").write_text(TRANSFORM_CODE)
    (source / "helper.py").write_text(
        "def describe(data):\n    return data if isinstance(data, str) else type(data).__name__\n"
    )
    model_dir = tmp_path_factory.mktemp("transform-model")
    server = launch_server(
        model_dir,
        tmp_path_factory.mktemp("logs"),
        SAGEMAKER_SUBMIT_DIRECTORY=source.as_uri(),  # file:///..., as SageMaker SDK local mode
        SAGEMAKER_PROGRAM="serve_me.py",
    )
    yield server, model_dir
    server.stop(signal.SIGKILL)


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_user_input_predict_and_output_fn(user_server, iris, content_type):
    rows = iris.X[:4]
    if content_type == "text/csv":
        body = "\n".join(",".join(map(str, row)) for row in rows)
    else:
        body = json.dumps(rows.tolist())
    response = user_server.post(body, content_type, "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/vnd.dockyard+json"
    np.testing.assert_allclose(
        response.json()["probabilities"], iris.model.predict_proba(rows), rtol=1e-12
    )


@pytest.mark.parametrize(
    "accept, passed",
    [(None, "application/json"), ("application/x-npy, text/csv;q=0.5", "application/x-npy")],
)
def test_output_fn_gets_the_chosen_accept(user_server, iris, accept, passed):
    response = user_server.post(json.dumps(iris.X[:1].tolist()), accept=accept)
    assert response.json()["accept"] == passed


def test_handler_exception_is_500_with_type_and_message(user_server, iris):
    body = json.dumps(iris.X[:1].tolist())
    response = user_server.post(body, **{"X-Amzn-SageMaker-Custom-Attributes": "fail"})
    assert response.status_code == 500
    assert response.text == "ValueError: asked to fail"
    assert "ValueError: asked to fail" in user_server.log()  # with its traceback


def test_handler_exception_status_code_is_honoured(user_server, iris):
    body = json.dumps(iris.X[:1].tolist())
    response = user_server.post(body, **{"X-Amzn-SageMaker-Custom-Attributes": "teapot"})
    assert response.status_code == 418
    assert response.text == "Teapot: short and stout"


def test_transform_fn_from_submit_directory(transform_server):
    server, model_dir = transform_server
    response = server.post("1,2\n3,4", "text/csv; charset=utf-8", "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "model": {"model_dir": str(model_dir), "from_context": str(model_dir)},
        "input": "1,2\n3,4",
        "content_type": "text/csv",
    }


def test_transform_fn_gets_bytes_for_binary_types(transform_server):
    server, _ = transform_server
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    response = server.post(buffer.getvalue(), "application/x-npy", "text/plain")
    assert response.headers["Content-Type"] == "text/plain"
    assert response.json()["input"] == "bytes"

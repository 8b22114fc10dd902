"""The managed TensorFlow image by its AWS URI, as SageMaker's TensorFlow Serving container
serves: a Keras model exported as a SavedModel under a version directory, TensorFlow Serving's
request shapes and answers, CSV and JSON lines in, errors as TensorFlow Serving gives them, and
inference.py's input_handler/output_handler."""

from __future__ import annotations

import json

import numpy as np
import pytest
from botocore.exceptions import ClientError
from needs import require

from frameworks.deploy import deploy_all, invoke
from frameworks.models import ROWS, TENSORFLOW_URI, csv, iris, iris_keras, package

require("tensorflow")
keras = require("keras")

HANDLERS_INFERENCE = """
    import json

    def input_handler(data, context):
        if context.request_content_type != "text/csv":
            raise ValueError(f"unsupported content type {context.request_content_type}")
        rows = [[float(v) for v in line.split(",")] for line in data.read().decode().splitlines() if line]
        return json.dumps({"instances": rows})

    def output_handler(response, context):
        if response.status_code != 200:
            raise ValueError(response.content.decode())
        labels = [max(range(3), key=p.__getitem__) for p in response.json()["predictions"]]
        return "\\n".join(map(str, labels)) + "\\n", "text/csv"
"""


@pytest.fixture(scope="module")
def keras_model(sm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tensorflow")
    model = iris_keras()
    stale = keras.models.clone_model(model)
    stale.set_weights([np.zeros_like(w) for w in model.get_weights()])

    def named_versions(root):
        stale.export(str(root / "iris" / "1"), verbose=False)
        model.export(str(root / "iris" / "2"), verbose=False)

    deploy_all(sm, {
        "tf-keras": {"PrimaryContainer": {"Image": TENSORFLOW_URI, "ModelDataUrl": package(
            tmp, "keras", lambda d: model.export(str(d / "1"), verbose=False))}},
        "tf-handlers": {"PrimaryContainer": {"Image": TENSORFLOW_URI, "ModelDataUrl": package(
            tmp, "handlers", named_versions, {"inference.py": HANDLERS_INFERENCE})}},
    })
    return model


def predictions(body: bytes, key: str = "predictions") -> np.ndarray:
    answer = json.loads(body)
    assert list(answer) == [key]
    return np.array(answer[key])


def test_request_shapes_answer_predictions(keras_model, rt):
    x, y = iris()
    want = keras_model.predict(x[ROWS], verbose=0)
    assert want.argmax(axis=1).tolist() == y[ROWS].tolist()
    for body in ({"instances": x[ROWS].tolist()},                      # row format
                 {"instances": [{"features": r} for r in x[ROWS].tolist()]},  # named inputs
                 {"signature_name": "serving_default", "instances": x[ROWS].tolist()},
                 x[ROWS].tolist()):                                    # a bare list of rows
        content_type, answer = invoke(rt, "tf-keras", json.dumps(body), ContentType="application/json")
        assert content_type == "application/json"
        np.testing.assert_allclose(predictions(answer), want, rtol=1e-5, atol=1e-6)
    # One bare row is one instance; the columnar format answers "outputs", as TensorFlow Serving does.
    _, answer = invoke(rt, "tf-keras", json.dumps(x[0].tolist()), ContentType="application/json")
    np.testing.assert_allclose(predictions(answer), want[:1], rtol=1e-5, atol=1e-6)
    _, answer = invoke(rt, "tf-keras", json.dumps({"inputs": x[ROWS].tolist()}), ContentType="application/json")
    np.testing.assert_allclose(predictions(answer, "outputs"), want, rtol=1e-5, atol=1e-6)


def test_csv_and_json_lines_in(keras_model, rt):
    x, _ = iris()
    want = keras_model.predict(x[ROWS], verbose=0)
    _, answer = invoke(rt, "tf-keras", csv(x[ROWS]), ContentType="text/csv")
    np.testing.assert_allclose(predictions(answer), want, rtol=1e-5, atol=1e-6)
    lines = "\n".join(json.dumps(r) for r in x[ROWS].tolist())
    _, answer = invoke(rt, "tf-keras", lines, ContentType="application/jsonlines")
    np.testing.assert_allclose(predictions(answer), want, rtol=1e-5, atol=1e-6)


def tfs_error(rt, endpoint: str, **kwargs) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName=endpoint, **kwargs)
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    return err["OriginalStatusCode"], json.loads(err["OriginalMessage"])["error"]


def test_errors_as_tensorflow_serving_gives_them(keras_model, rt):
    status, message = tfs_error(rt, "tf-keras", ContentType="application/x-npy", Body=b"\x93NUMPY")
    assert (status, message) == (415, "Unsupported Media Type: application/x-npy")
    status, message = tfs_error(rt, "tf-keras", ContentType="application/json", Body="[[1, 2]]")
    assert status == 400 and "Matrix size-incompatible" in message
    status, message = tfs_error(rt, "tf-keras", ContentType="application/json",
                                Body=json.dumps({"signature_name": "nope", "instances": [[1, 2, 3, 4]]}))
    assert (status, message) == (404, 'Serving signature name: "nope" not found in signature def')
    status, message = tfs_error(rt, "tf-keras", ContentType="application/json", Body="[[1, 2, 3, 4]]",
                                CustomAttributes="tfs-model-name=other")
    assert (status, message) == (404, "Servable not found for request: Latest(other)")


def test_input_and_output_handlers_on_the_highest_version(keras_model, rt):
    x, y = iris()
    content_type, answer = invoke(rt, "tf-handlers", csv(x[ROWS]), ContentType="text/csv")
    assert content_type == "text/csv"
    # Version 2 is the trained model; version 1 (all zeros) would answer class 0 everywhere.
    assert answer.decode().split() == [str(label) for label in y[ROWS]]
    status, message = tfs_error(rt, "tf-handlers", ContentType="application/json", Body="[[1, 2, 3, 4]]")
    assert (status, message) == (500, "ValueError: unsupported content type application/json")
    status, message = tfs_error(rt, "tf-handlers", ContentType="text/csv", Body="1,2,3,4",
                                CustomAttributes="tfs-model-version=1")
    assert status == 500 and "Servable not found for request: Specific(iris, 1)" in message

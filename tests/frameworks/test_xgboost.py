"""The managed XGBoost image by its AWS URI: a booster in ``xgboost-model``, CSV, LIBSVM and JSON
in, CSV or JSON out as SageMaker's XGBoost container answers; inference.py overrides; and the
serial example, scikit-learn preprocessing feeding XGBoost with CSV between them."""

from __future__ import annotations

import io
import json
import pickle
import urllib.request

import numpy as np
import pytest
from botocore.exceptions import ClientError
from e2e.models import csv_stage_inference
from needs import require
from sklearn.preprocessing import StandardScaler

from frameworks.deploy import deploy_all, invoke
from frameworks.models import (
    ROWS,
    SKLEARN_URI,
    XGBOOST_URI,
    csv,
    iris,
    iris_booster,
    package,
)

xgb = require("xgboost")

LABELS_INFERENCE = """
    import json

    import numpy as np

    def output_fn(prediction, accept):
        # Class labels instead of the booster's probabilities.
        return json.dumps(np.argmax(prediction, axis=1).tolist()), "application/json"
"""
SCALER_INFERENCE = csv_stage_inference("transform")


@pytest.fixture(scope="module")
def models(sm, tmp_path_factory):
    import joblib

    tmp = tmp_path_factory.mktemp("xgboost")
    x, y = iris()
    booster = iris_booster()
    classifier = xgb.XGBClassifier(n_estimators=5, max_depth=2, random_state=0).fit(x, y)
    scaler = StandardScaler().fit(x)
    scaled_booster = iris_booster(scaler.transform(x))
    deploy_all(sm, {
        "xgb-booster": {"PrimaryContainer": {"Image": XGBOOST_URI, "ModelDataUrl": package(
            tmp, "booster", lambda d: (d / "xgboost-model").write_bytes(booster.save_raw("ubj")))}},
        "xgb-pickled": {"PrimaryContainer": {"Image": XGBOOST_URI, "ModelDataUrl": package(
            tmp, "pickled", lambda d: (d / "xgboost-model").write_bytes(pickle.dumps(classifier)),
            {"inference.py": LABELS_INFERENCE})}},
        # XGBoost hangs in forked workers: the server falls back to one worker.
        "xgb-workers": {"PrimaryContainer": {"Image": XGBOOST_URI, "ModelDataUrl": package(
            tmp, "booster-workers", lambda d: (d / "xgboost-model").write_bytes(booster.save_raw("ubj"))),
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}}},
        # The seed's serial example (Serial is the default mode).
        "xgb-serial": {"Containers": [
            {"ContainerHostname": "preprocess", "Image": SKLEARN_URI, "ModelDataUrl": package(
                tmp, "scaler", lambda d: joblib.dump(scaler, d / "model.joblib"), {"inference.py": SCALER_INFERENCE})},
            {"ContainerHostname": "xgboost", "Image": XGBOOST_URI, "ModelDataUrl": package(
                tmp, "scaled-booster", lambda d: scaled_booster.save_model(str(d / "xgboost-model.json"))
            )},
        ]},
    })
    return {"booster": booster, "classifier": classifier, "scaler": scaler, "scaled_booster": scaled_booster}


def expected(booster, rows: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(rows))


def test_csv_in_csv_out_by_default(models, rt):
    x, _ = iris()
    content_type, body = invoke(rt, "xgb-booster", csv(x[ROWS]), ContentType="text/csv")
    assert content_type == "text/csv"
    answer = np.loadtxt(io.StringIO(body.decode()), delimiter=",")
    np.testing.assert_allclose(answer, expected(models["booster"], x[ROWS]), rtol=1e-6)
    # One row of multi:softprob probabilities comes back as one comma-separated line.
    _, body = invoke(rt, "xgb-booster", csv(x[:1]), ContentType="text/csv")
    assert body.decode().count("\n") <= 1 and len(body.decode().split(",")) == 3


def test_json_and_libsvm_in_json_out(models, rt):
    x, _ = iris()
    want = expected(models["booster"], x[ROWS])
    _, body = invoke(rt, "xgb-booster", json.dumps(x[ROWS].tolist()), ContentType="application/json",
                     Accept="application/json")
    np.testing.assert_allclose(json.loads(body), want, rtol=1e-6)
    libsvm = "\n".join("0 " + " ".join(f"{i}:{v}" for i, v in enumerate(row)) for row in x[ROWS])
    for content_type in ("text/libsvm", "text/x-libsvm"):
        content, body = invoke(rt, "xgb-booster", libsvm, ContentType=content_type, Accept="application/json")
        assert content == "application/json"
        np.testing.assert_allclose(json.loads(body), want, rtol=1e-6)


def test_request_without_content_type_is_csv(models, rt):
    x, _ = iris()
    _, body = invoke(rt, "xgb-booster", csv(x[:2]), Accept="application/json")
    np.testing.assert_allclose(json.loads(body), expected(models["booster"], x[:2]), rtol=1e-6)


def test_missing_values_and_wrong_width(models, rt):
    # An empty CSV field is a missing value, which the booster handles.
    _, body = invoke(rt, "xgb-booster", "5.1,,1.4,0.2", ContentType="text/csv", Accept="application/json")
    np.testing.assert_allclose(json.loads(body), expected(models["booster"], np.array([[5.1, np.nan, 1.4, 0.2]])),
                               rtol=1e-6)
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName="xgb-booster", ContentType="text/csv", Body="1,2,3,4,5,6")
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["OriginalStatusCode"] == 400
    assert "Unable to evaluate payload provided" in err["OriginalMessage"]
    assert "Stack trace" not in err["OriginalMessage"]


def test_pickled_sklearn_wrapper_with_output_fn_override(models, rt):
    x, _ = iris()
    content_type, body = invoke(rt, "xgb-pickled", csv(x[ROWS]), ContentType="text/csv", Accept="application/json")
    assert content_type == "application/json"
    assert json.loads(body) == models["classifier"].predict(x[ROWS]).tolist()


def test_serial_sklearn_preprocessing_into_xgboost(models, rt):
    x, _ = iris()
    rows = x[ROWS] + 0.05  # off the training points, so the scaling matters
    content_type, body = invoke(rt, "xgb-serial", csv(rows), ContentType="text/csv")
    assert content_type == "text/csv"
    want = expected(models["scaled_booster"], models["scaler"].transform(rows))
    np.testing.assert_allclose(np.loadtxt(io.StringIO(body.decode()), delimiter=","), want, rtol=1e-5)
    assert want.argmax(axis=1).tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_workers_setting_falls_back_to_one_worker(models, rt, server):
    x, _ = iris()
    _, body = invoke(rt, "xgb-workers", csv(x[ROWS]), ContentType="text/csv", Accept="application/json")
    np.testing.assert_allclose(json.loads(body), expected(models["booster"], x[ROWS]), rtol=1e-6)
    logs = json.load(urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/xgb-workers/logs"))["logs"]
    assert any("SAGEMAKER_MODEL_SERVER_WORKERS=2 ignored: xgboost hangs in forked worker processes" in line
               for entry in logs for line in entry["lines"])

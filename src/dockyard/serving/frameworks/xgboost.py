"""XGBoost, as SageMaker's XGBoost container serves it: a booster in ``xgboost-model``.

* Model: ``xgboost-model`` (else the only file in the model directory) in XGBoost's own format
  (JSON, UBJSON, or the old binary one), or a pickled ``Booster`` or scikit-learn wrapper
  (``XGBClassifier``…). A wrapper is served through its booster, so every model answers what the
  container answers: raw ``Booster.predict`` output (class probabilities for a classifier).
  Unpickling runs code: DOCKYARD_RESTRICTED_UNPICKLE=true refuses pickles (``save_model`` instead).
* Input: ``text/csv`` without header (an empty field is a missing value), ``text/libsvm`` /
  ``text/x-libsvm``, ``application/json`` (an array, or ``{"instances": …}``) and
  ``application/x-npy``, each decoded to the ``DMatrix`` a user ``predict_fn`` receives, as in the
  container. A request without Content-Type is CSV.
* Output: ``text/csv`` by default (the container's default Accept): one line of comma-separated
  predictions, or one line per row for 2-D output (``multi:softprob``); ``application/json``: an
  array. A body the booster cannot take (wrong width, say) is a 400, as in the container.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from dockyard.serving import codecs
from dockyard.serving.errors import BadRequest, StartupError
from dockyard.serving.frameworks.base import Framework, model_file, threads_per_worker
from dockyard.serving.settings import Settings

MODEL_FILE = "xgboost-model"
# Pickle protocols 2 and up open with this byte; XGBoost's JSON and UBJSON open with "{".
_PICKLE_MAGIC = b"\x80"


def load_booster(path: Path, restricted_unpickle: bool) -> xgb.Booster:
    """A booster from XGBoost's own formats or from a pickle of a Booster or sklearn wrapper."""
    raw = path.read_bytes()
    if not raw.startswith(_PICKLE_MAGIC):
        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        return booster
    if restricted_unpickle:
        raise StartupError(
            f"{path} is a pickle and DOCKYARD_RESTRICTED_UNPICKLE=true refuses pickles for "
            "XGBoost: save the model with booster.save_model() instead"
        )
    model = pickle.loads(raw)
    if isinstance(model, xgb.XGBModel):
        return model.get_booster()
    if not isinstance(model, xgb.Booster):
        raise TypeError(f"{path} holds a {type(model).__name__}, not an XGBoost model")
    return model


def model_fn(model_dir: str, settings: Settings) -> xgb.Booster:
    """The booster in ``model_dir``, with its thread pool sized to this worker's CPUs."""
    # The container's rule: xgboost-model, else the one model file there is.
    path = model_file(Path(model_dir), MODEL_FILE, lambda p: True, "model file")
    booster = load_booster(path, settings.restricted_unpickle)
    booster.set_param("nthread", str(threads_per_worker(settings)))
    return booster


def predict_fn(data: Any, model: Any) -> Any:
    """``model.predict`` on a DMatrix; what XGBoost refuses in the data is the client's error."""
    if not isinstance(data, xgb.DMatrix):
        data = _dmatrix(np.asarray(data, dtype=np.float32))
    try:
        return model.predict(data, validate_features=False)
    except xgb.core.XGBoostError as exc:
        # XGBoost appends a native stack trace to the reason; the first line is the reason.
        reason = str(exc).split("\nStack trace", 1)[0].strip()
        raise BadRequest(f"Unable to evaluate payload provided: {reason}") from None


def _dmatrix(data: Any) -> xgb.DMatrix:
    if isinstance(data, np.ndarray) and data.ndim == 1:
        data = data.reshape(1, -1)
    if isinstance(data, np.ndarray) and data.ndim != 2:
        raise BadRequest(f"expected rows of features, got a {data.ndim}-D array")
    return xgb.DMatrix(data)


def decode_csv(body: bytes | str) -> xgb.DMatrix:
    """Header-less numeric CSV; an empty field is a missing value, as in the container."""
    lines = [line for line in codecs.decode_text(body).splitlines() if line.strip()]
    if not lines:
        raise BadRequest("text/csv body is empty")
    rows = [[field.strip() or "nan" for field in line.split(",")] for line in lines]
    if len({len(row) for row in rows}) != 1:
        raise BadRequest("text/csv rows have different numbers of fields")
    try:
        return _dmatrix(np.array(rows, dtype=np.float32))
    except ValueError as exc:
        raise BadRequest(f"text/csv body is not numeric CSV: {exc}") from None


def decode_json(body: bytes | str) -> xgb.DMatrix:
    try:
        return _dmatrix(np.asarray(codecs.decode_json(body), dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"application/json body is not an array of numbers: {exc}") from None


def decode_libsvm(body: bytes | str) -> xgb.DMatrix:
    return xgb.DMatrix(codecs.decode_libsvm(body))


def decode_npy(body: bytes | str) -> xgb.DMatrix:
    return _dmatrix(codecs.decode_npy(body))


def encode_csv(prediction: Any) -> bytes:
    """One line ``p1,p2,…`` (the container's), or one line per row for 2-D predictions."""
    array = np.asarray(prediction)
    if array.ndim <= 1:
        return ",".join(map(str, array.reshape(-1).tolist())).encode()
    return codecs.encode_csv(array)


FRAMEWORK = Framework(
    name="xgboost",
    model_fn=model_fn,
    predict_fn=predict_fn,
    decoders={
        codecs.CSV: decode_csv,
        codecs.LIBSVM: decode_libsvm,
        codecs.X_LIBSVM: decode_libsvm,
        codecs.JSON: decode_json,
        codecs.NPY: decode_npy,
    },
    encoders={codecs.CSV: encode_csv, codecs.JSON: codecs.encode_json},
    default_content_type=codecs.CSV,
    default_accept=codecs.CSV,
    fork_safe=False,
)

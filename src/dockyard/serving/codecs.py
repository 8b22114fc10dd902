"""Default request decoders, response encoders and content negotiation, shared by all frameworks.

These follow SageMaker's framework containers: ``text/csv``, ``application/json`` and
``application/x-npy`` in and out; a request without Content-Type is JSON (as in the scikit-learn
container); an Accept that is missing or ``*/*`` means SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT.
Decoders take the raw body (``bytes``; ``str`` is accepted too, so a user ``input_fn`` can fall
back to them) and return a numpy array; encoders take a prediction and return ``bytes``.
Header parsing is cached: clients send the same few header values again and again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from dockyard.serving.errors import BadRequest, InferenceError

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
LIBSVM = "text/libsvm"
X_LIBSVM = "text/x-libsvm"
TEXT = "text/plain; charset=utf-8"

# The SageMaker inference toolkit hands these bodies to a user input_fn as UTF-8 decoded ``str``.
TEXT_TYPES = frozenset({JSON, CSV})

Decoder = Callable[[bytes | str], Any]
Encoder = Callable[[Any], bytes]


@lru_cache(maxsize=256)
def media_type(header: str) -> str:
    """``Application/JSON; charset=utf-8`` → ``application/json``; an empty header means JSON."""
    return header.split(";", 1)[0].strip().lower() or JSON


@lru_cache(maxsize=256)
def negotiate(accept: str, supported: tuple[str, ...] | None, default: str) -> str | None:
    """The response type for an Accept header, or None when nothing acceptable is supported.

    Media ranges are tried by descending q-value (ties keep header order); ``*/*`` stands for
    ``default``; ``type/*`` takes the first supported type of that family. ``supported=None``
    means any concrete type will do (a user output_fn decides for itself).
    """
    for wanted in _ranges(accept) or (default,):
        if wanted == "*/*":
            wanted = default
        if wanted.endswith("/*"):
            family = wanted[:-1]
            match = next((s for s in supported or () if s.startswith(family)), None)
            if match is not None or supported is None:
                return match or wanted
        elif supported is None or wanted in supported:
            return wanted
    return None


def _ranges(accept: str) -> list[str]:
    weighted = []
    for position, item in enumerate(accept.split(",")):
        kind, _, params = item.partition(";")
        kind = kind.strip().lower()
        if not kind:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, position, kind))
    return [kind for _, _, kind in sorted(weighted)]


def decode_text(body: bytes | str) -> str:
    """The body as UTF-8 text (what a user input_fn gets for JSON and CSV); 400 if it is not."""
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 text: {exc}") from None


def decode_csv(body: bytes | str) -> np.ndarray:
    """Numeric CSV without a header → a 2-D float array (a single row becomes one row of many)."""
    text = decode_text(body)
    if not text.strip():
        raise BadRequest("text/csv body is empty")
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", dtype=float, ndmin=2)
    except ValueError as exc:
        raise BadRequest(f"text/csv body is not numeric CSV: {exc}") from None


def decode_json(body: bytes | str) -> np.ndarray:
    """A JSON array, or an object with an ``instances`` array (TensorFlow Serving style)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"application/json body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        if "instances" not in data:
            raise BadRequest('an application/json object body needs an "instances" array')
        data = data["instances"]
    try:
        return np.array(data)
    except ValueError as exc:
        raise BadRequest(f"application/json body is not a rectangular array: {exc}") from None


def decode_libsvm(body: bytes | str) -> Any:
    """LIBSVM text (``[label] index:value …`` per line) → a ``scipy.sparse.csr_matrix``.

    A leading label and ``qid:`` tokens are ignored, as the SageMaker XGBoost container does;
    indices are taken as given, so the matrix has as many columns as the largest index + 1.
    """
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    lines = [line for line in decode_text(body).splitlines() if line.strip()]
    if not lines:
        raise BadRequest("text/libsvm body is empty")
    for row, line in enumerate(lines):
        for token in line.split():
            index, colon, value = token.partition(":")
            if not colon or index == "qid":
                continue
            try:
                columns.append(int(index))
                values.append(float(value))
            except ValueError:
                raise BadRequest(
                    f"text/libsvm line {row + 1}: {token!r} is not index:value"
                ) from None
            rows.append(row)
    if any(c < 0 for c in columns):
        raise BadRequest("text/libsvm indices must not be negative")
    shape = (len(lines), max(columns, default=-1) + 1)
    return csr_matrix((values, (rows, columns)), shape=shape, dtype=np.float32)


def decode_npy(body: bytes | str) -> np.ndarray:
    """An ``.npy`` file's bytes; object arrays are refused (unpickling them would run code)."""
    if isinstance(body, str):
        raise BadRequest("application/x-npy body must be bytes")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadRequest(f"application/x-npy body is not a .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise BadRequest("application/x-npy body is an .npz archive, not a .npy array")
    return array


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(prediction: Any) -> bytes:
    """A JSON array (or whatever JSON value the prediction is)."""
    if isinstance(prediction, np.ndarray):
        prediction = prediction.tolist()
    return json.dumps(prediction, default=_json_default).encode()


def encode_csv(prediction: Any) -> bytes:
    """One line per row; a 1-D prediction gives one value per line, as SageMaker's encoder does."""
    array = np.asarray(prediction)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        lines: Iterable[str] = map(str, array.tolist())
    elif array.ndim == 2:
        lines = (",".join(map(str, row)) for row in array.tolist())
    else:
        raise InferenceError(f"a {array.ndim}-D prediction cannot be encoded as text/csv")
    return ("\n".join(lines) + "\n").encode()


def encode_npy(prediction: Any) -> bytes:
    """The bytes of an ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(prediction), allow_pickle=False)
    return buffer.getvalue()


DECODERS: Mapping[str, Decoder] = {JSON: decode_json, CSV: decode_csv, NPY: decode_npy}
ENCODERS: Mapping[str, Encoder] = {JSON: encode_json, CSV: encode_csv, NPY: encode_npy}

"""TensorFlow, as SageMaker's TensorFlow Serving container serves it: SavedModels, TFS requests.

dockyard runs the SavedModel in-process instead of behind TensorFlow Serving, and answers as the
container's nginx front end and TensorFlow Serving's REST API do:

* Model: a SavedModel under a numeric version directory, ``1/saved_model.pb`` (served as model
  ``model``) or ``<name>/1/saved_model.pb``; the highest version of each model is served, as
  TensorFlow Serving's default version policy does. Several names → the first is the default and
  the custom attribute ``tfs-model-name=<name>`` picks another.
* ``application/json`` (also ``application/jsonlines``): a TensorFlow Serving request
  (``{"instances": …}``, ``{"inputs": …}``, optionally ``"signature_name"``) as is; JSON lines
  become one instance each; any other JSON value becomes the instances (wrapped in a list unless
  it is a list of lists). ``text/csv``: one instance per line. Anything else is a 415.
* Row format (``instances``) answers ``{"predictions": …}``, columnar (``inputs``) answers
  ``{"outputs": …}``, from the ``serving_default`` signature unless the request names another.
  Errors answer ``{"error": "…"}``: 400 for a request the model cannot take, 404 for an unknown
  model, version or signature, 500 for a failing user handler.
* ``inference.py`` may define ``input_handler(data, context)`` (returns the TFS request body) and
  ``output_handler(response, context)`` (gets the TFS response: ``status_code``, ``content``,
  ``text``, ``json()``; returns ``(body, content_type)``), both, as the container requires.
  ``handler(data, context)``, which posts to TensorFlow Serving itself, cannot run without
  TensorFlow Serving and fails the start with a message saying so.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from dockyard.serving import codecs
from dockyard.serving.errors import StartupError
from dockyard.serving.frameworks.base import (
    Framework,
    RequestHandler,
    threads_per_worker,
)
from dockyard.serving.handlers import ARITY, UserModule
from dockyard.serving.settings import Settings

log = logging.getLogger("dockyard.serving")

DEFAULT_SIGNATURE = "serving_default"
# The container's name for a model whose version directories lie directly in /opt/ml/model.
ROOT_MODEL_NAME = "model"
JSON_TYPES = frozenset({codecs.JSON, "application/jsonlines", "application/jsons"})
_TFS_ATTRIBUTE = re.compile(r"tfs-[a-z\-]+=[^,]+")
Reply = tuple[int, bytes, str]


class TFSError(Exception):
    """A request TensorFlow Serving would refuse: ``status`` and the ``{"error"}`` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Servable:
    """One model's highest version, loaded."""

    name: str
    version: int
    signatures: dict[str, Any] = field(repr=False)
    # The loaded SavedModel owns the variables the signatures read: it must live as long.
    root: Any = field(repr=False, default=None)


def setup(settings: Settings) -> None:
    # Before anything starts the TensorFlow runtime, or the pools are fixed at every core.
    threads = threads_per_worker(settings)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def find_models(model_dir: Path) -> dict[str, tuple[int, Path]]:
    """Model name → (highest version, its directory), for ``<v>/`` and ``<name>/<v>/`` layouts."""
    found: dict[str, tuple[int, Path]] = {}
    for pb in sorted(model_dir.glob("*/saved_model.pb")) + sorted(
        model_dir.glob("*/*/saved_model.pb")
    ):
        version_dir = pb.parent
        if not version_dir.name.isdigit():
            continue
        base = version_dir.parent
        name = ROOT_MODEL_NAME if base == model_dir else base.name
        version = int(version_dir.name)
        if name not in found or version > found[name][0]:
            found[name] = (version, version_dir)
    return found


def model_fn(model_dir: str, settings: Settings) -> dict[str, Servable]:
    """Every model in ``model_dir`` (highest version each), by name; the default first."""
    root = Path(model_dir)
    models = find_models(root)
    if not models:
        hint = (
            " saved_model.pb lies directly in the model directory: move it into a version "
            "directory, 1/."
            if (root / "saved_model.pb").is_file()
            else ""
        )
        raise FileNotFoundError(
            f"no SavedModel under a numeric version directory in {model_dir} (expected "
            f"1/saved_model.pb or <name>/1/saved_model.pb).{hint}"
        )
    servables = {}
    for name, (version, path) in models.items():
        loaded = tf.saved_model.load(str(path))
        servables[name] = Servable(name, version, dict(loaded.signatures), loaded)
        log.info("loaded TensorFlow model %s version %d from %s", name, version, path)
    return servables


# --- what TensorFlow Serving does with a request ------------------------------------------------


def tfs_predict(servable: Servable, request: Any) -> dict[str, Any]:
    """A TensorFlow Serving ``:predict`` request, answered."""
    if not isinstance(request, dict):
        raise TFSError(400, "the request body must be a JSON object")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    signature = servable.signatures.get(signature_name)
    if signature is None:
        raise TFSError(
            404, f'Serving signature name: "{signature_name}" not found in signature def'
        )
    specs: dict[str, tf.TensorSpec] = signature.structured_input_signature[1]
    if "instances" in request:
        inputs = _row_inputs(request["instances"], specs)
    elif "inputs" in request:
        inputs = _columnar_inputs(request["inputs"], specs)
    elif "examples" in request:
        raise TFSError(
            400, "dockyard serves the predict method; tf.Example requests are not supported"
        )
    else:
        raise TFSError(400, "Missing 'inputs' or 'instances' key")
    try:
        tensors = {name: _tensor(value, specs[name]) for name, value in inputs.items()}
        outputs = {name: t.numpy() for name, t in signature(**tensors).items()}
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as exc:
        raise TFSError(400, f"{type(exc).__name__}: {exc}") from None
    if "instances" in request:
        if len(outputs) == 1:
            return {"predictions": _jsonable(next(iter(outputs.values())))}
        rows = len(next(iter(outputs.values())))
        return {
            "predictions": [{k: _jsonable(v[i]) for k, v in outputs.items()} for i in range(rows)]
        }
    if len(outputs) == 1:
        return {"outputs": _jsonable(next(iter(outputs.values())))}
    return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}


def _row_inputs(instances: Any, specs: dict[str, tf.TensorSpec]) -> dict[str, Any]:
    if not isinstance(instances, list):
        raise TFSError(400, "JSON Value: instances must be a list")
    named = bool(instances) and all(isinstance(i, dict) for i in instances)
    if len(specs) == 1 and not named:
        return {next(iter(specs)): instances}
    if not named:
        raise TFSError(
            400,
            f"the signature takes inputs {', '.join(specs)}: each instance must be an object naming them",
        )
    missing = [n for n in specs if any(n not in i for i in instances)]
    if missing:
        raise TFSError(400, f"instances lack input(s) {', '.join(missing)}")
    return {name: [i[name] for i in instances] for name in specs}


def _columnar_inputs(inputs: Any, specs: dict[str, tf.TensorSpec]) -> dict[str, Any]:
    # One input may be given bare or by name; several must be named.
    if len(specs) == 1 and not (isinstance(inputs, dict) and set(inputs) == set(specs)):
        return {next(iter(specs)): inputs}
    if not isinstance(inputs, dict):
        raise TFSError(
            400, f"the signature takes inputs {', '.join(specs)}: name them in an object"
        )
    missing = [n for n in specs if n not in inputs]
    if missing:
        raise TFSError(400, f"inputs lack {', '.join(missing)}")
    return {name: inputs[name] for name in specs}


def _tensor(value: Any, spec: tf.TensorSpec) -> tf.Tensor:
    if spec.dtype == tf.string:
        value = _b64_decoded(value)
    return tf.constant(value, dtype=spec.dtype)


def _b64_decoded(value: Any) -> Any:
    # TensorFlow Serving's JSON for binary strings: {"b64": "<base64>"}.
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_b64_decoded(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype.kind in "SO":
        return np.vectorize(
            lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b, otypes=[object]
        )(array).tolist()
    return array.tolist()


# --- what the container's nginx front end does before TensorFlow Serving ---------------------------


def request_from_body(body: bytes, media: str) -> dict[str, Any]:
    """A client body → a TensorFlow Serving request (the container's nginx/njs rules)."""
    text = codecs.decode_text(body)
    if media == codecs.CSV:
        return {"instances": [_csv_instance(line) for line in text.splitlines() if line.strip()]}
    try:
        data = json.loads(text)
    except ValueError:
        try:
            return {"instances": [json.loads(line) for line in text.splitlines() if line.strip()]}
        except ValueError as exc:
            raise TFSError(400, f"the body is neither JSON nor JSON lines: {exc}") from None
    if isinstance(data, dict) and {"instances", "inputs", "examples"} & set(data):
        return data
    if not (isinstance(data, list) and data and isinstance(data[0], list)):
        data = [data]
    return {"instances": data}


def _csv_instance(line: str) -> Any:
    values = [_csv_value(field.strip()) for field in line.split(",")]
    return values if len(values) > 1 else values[0]


def _csv_value(field: str) -> Any:
    try:
        return int(field)
    except ValueError:
        pass
    try:
        return float(field)
    except ValueError:
        return field.strip('"')


class Context(NamedTuple):
    """What the container passes to ``input_handler`` and ``output_handler`` (same fields)."""

    model_name: str
    model_version: str | None
    method: str
    rest_uri: str
    grpc_port: str | None
    custom_attributes: str
    request_content_type: str
    accept_header: str
    content_length: int


@dataclass
class TFSResponse:
    """TensorFlow Serving's answer as ``output_handler`` sees it (the parts of requests.Response
    handlers use)."""

    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": codecs.JSON})

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        return json.loads(self.content)


class TFSHandler:
    """Answers every request of a TensorFlow container, with or without user handlers."""

    def __init__(
        self,
        servables: dict[str, Servable],
        input_handler: Callable[[Any, Context], Any] | None = None,
        output_handler: Callable[[TFSResponse, Context], Any] | None = None,
    ) -> None:
        self._servables = servables
        self._default = next(iter(servables))
        self._input_handler = input_handler
        self._output_handler = output_handler

    def __call__(
        self, body: bytes, content_type: str, accept: str, custom_attributes: str
    ) -> Reply:
        attributes = dict(kv.split("=", 1) for kv in _TFS_ATTRIBUTE.findall(custom_attributes))
        context = Context(
            model_name=attributes.get("tfs-model-name", self._default),
            model_version=attributes.get("tfs-model-version"),
            method=attributes.get("tfs-method", "predict"),
            rest_uri="",
            grpc_port=None,
            custom_attributes=custom_attributes,
            request_content_type=content_type or codecs.JSON,
            accept_header=accept or codecs.JSON,
            content_length=len(body),
        )
        if self._input_handler is None or self._output_handler is None:
            return self._default_path(body, context)
        try:
            processed = self._input_handler(io.BytesIO(body), context)
            response = self._serve(processed, context)
            result = self._output_handler(response, context)
        except Exception as exc:  # the container answers a failing handler with 500 {"error"}
            log.exception("inference.py handler failed")
            return _error(500, f"{type(exc).__name__}: {exc}")
        if isinstance(result, tuple) and len(result) == 2:
            reply_body, reply_type = result
        else:
            reply_body, reply_type = result, context.accept_header
        if isinstance(reply_body, str):
            reply_body = reply_body.encode()
        return 200, bytes(reply_body), str(reply_type or codecs.JSON)

    def _default_path(self, body: bytes, context: Context) -> Reply:
        media = codecs.media_type(context.request_content_type)
        if media not in JSON_TYPES and media != codecs.CSV:
            return _error(415, f"Unsupported Media Type: {context.request_content_type}")
        try:
            request = request_from_body(body, media)
        except TFSError as exc:
            return _error(exc.status, str(exc))
        response = self._serve(request, context)
        return response.status_code, response.content, codecs.JSON

    def _serve(self, request: Any, context: Context) -> TFSResponse:
        """TensorFlow Serving's REST ``:predict`` for ``request`` (a body or a parsed object)."""
        try:
            if isinstance(request, (bytes, bytearray, str)):
                try:
                    request = json.loads(request)
                except ValueError as exc:
                    raise TFSError(400, f"the request is not JSON: {exc}") from None
            servable = self._servable(context)
            answer = tfs_predict(servable, request)
        except TFSError as exc:
            return TFSResponse(exc.status, json.dumps({"error": str(exc)}).encode())
        return TFSResponse(200, json.dumps(answer).encode())

    def _servable(self, context: Context) -> Servable:
        servable = self._servables.get(context.model_name)
        version = context.model_version
        if servable is None or (version is not None and version != str(servable.version)):
            wanted = (
                f"Specific({context.model_name}, {version})"
                if version
                else f"Latest({context.model_name})"
            )
            raise TFSError(404, f"Servable not found for request: {wanted}")
        if context.method != "predict":
            raise TFSError(400, f"dockyard serves the predict method, not {context.method}")
        return servable


def _error(status: int, message: str) -> Reply:
    return status, json.dumps({"error": message}).encode(), codecs.JSON


def request_handler(
    model: dict[str, Servable], user: UserModule, settings: Settings
) -> RequestHandler:
    """The handler for ``model``, using the user module's handlers as the container would."""
    functions = user.functions
    if user.path is None:
        return TFSHandler(model)
    if "handler" in functions:
        raise StartupError(
            f"{user.path} defines handler(data, context), which posts to TensorFlow Serving's REST "
            "port itself; dockyard runs the SavedModel without TensorFlow Serving: define "
            "input_handler(data, context) and output_handler(response, context) instead"
        )
    if "input_handler" in functions and "output_handler" in functions:
        return TFSHandler(model, functions["input_handler"], functions["output_handler"])
    toolkit = [name for name in ARITY if name in functions]
    given = [name for name in ("input_handler", "output_handler") if name in functions]
    what = (
        f"defines only {given[0]}"
        if given
        else f"defines {', '.join(toolkit)}"
        if toolkit
        else "defines no handlers"
    )
    raise StartupError(
        f"{user.path} {what}: the TensorFlow Serving container calls input_handler(data, context) "
        "and output_handler(response, context), and needs both"
    )


FRAMEWORK = Framework(
    name="tensorflow",
    model_fn=model_fn,
    setup=setup,
    hooks=("input_handler", "output_handler", "handler"),
    request_handler=request_handler,
    fork_safe=False,
)

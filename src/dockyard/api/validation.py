"""Server-side input validation against botocore's own service model, with Coral-style messages.

botocore checks only required members, types and minimums on the client. Real SageMaker (Coral)
also enforces maximum lengths, regex patterns, enums, list and map sizes and numeric ranges, and
answers `ValidationException` with every violation in one message:

    2 validation errors detected: Value 'bad_name!' at 'modelName' failed to satisfy constraint:
    Member must satisfy regular expression pattern: ^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$; ...

`RequestValidator` does the same for any botocore service. Per-shape facts (bounds, compiled
patterns, enum sets, message texts) are worked out once per operation, on first use.
Unknown members are ignored — newer SDKs send members this botocore may not know — and
`known_members` drops them before the control plane sees a request, so nothing unknown is stored
or echoed back.
"""

from __future__ import annotations

import datetime
import functools
import math
import threading
import types
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.model import NoShapeFoundError

from dockyard.api.constraints import SIZED, ShapeBook, ShapeFacts, compile_java, matches

__all__ = [
    "LOCAL_MODEL_DATA_OVERRIDES",
    "InputValidationError",
    "RequestValidator",
    "autoscaling_validator",
    "runtime_validator",
    "sagemaker_validator",
]

MAX_ECHO = 200  # characters of a value one message may echo
MAX_LISTED = 100  # violations spelled out in one message (the count is always the full count)

# dockyard's deliberate relaxation (README, "Deliberate extensions"): model data may also be local
# (`file://…`, an absolute path) or plain `http://…` for development. Every other check stays.
LOCAL_MODEL_DATA = r"((https?|s3)://([^/]+)/?(.*)|file://.+|/.+)"
LOCAL_OUTPUT = r"((https|s3)://([^/]+)/?(.*)|file:///.+)"
LOCAL_MODEL_DATA_OVERRIDES: Mapping[tuple[str, str], str] = types.MappingProxyType({
    ("ContainerDefinition", "ModelDataUrl"): LOCAL_MODEL_DATA,
    ("S3ModelDataSource", "S3Uri"): LOCAL_MODEL_DATA,  # ModelDataSource and AdditionalModelDataSources
    # Where asynchronous inference results and captured data go: also a local file:// directory.
    ("AsyncInferenceOutputConfig", "S3OutputPath"): LOCAL_OUTPUT,
    ("AsyncInferenceOutputConfig", "S3FailurePath"): LOCAL_OUTPUT,
    ("DataCaptureConfig", "DestinationS3Uri"): LOCAL_OUTPUT,
})

_NUMERIC = frozenset({"integer", "long", "float", "double"})


class InputValidationError(Exception):
    """Input breaks the service model; `message` is the Coral-style text for ValidationException."""

    def __init__(self, message: str, violations: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations = violations

    @classmethod
    def from_violations(cls, violations: list[str]) -> InputValidationError:
        n = len(violations)
        listed = "; ".join(violations[:MAX_LISTED])
        if n > MAX_LISTED:
            listed += f"; ... ({n - MAX_LISTED} more)"
        return cls(f"{n} validation error{'' if n == 1 else 's'} detected: {listed}", tuple(violations))


class RequestValidator:
    """Validates an operation's input parameters against botocore's model of one service."""

    def __init__(self, service_name: str, overrides: Mapping[tuple[str, str], str] | None = None) -> None:
        self.service_name = service_name
        self._model = botocore.session.get_session().get_service_model(service_name)
        self._names = frozenset(self._model.operation_names)
        self._overrides = dict(overrides or {})
        for key, pattern in self._overrides.items():
            self._check_override(key, pattern)
        self._book = ShapeBook(self._overrides)
        self._roots: dict[str, ShapeFacts | None] = {}
        self._lock = threading.Lock()

    def has_operation(self, name: str) -> bool:
        return name in self._names

    def operation_names(self) -> frozenset[str]:
        return self._names

    def validate(self, operation_name: str, params: Mapping) -> None:
        """Raise InputValidationError listing every violation; KeyError for an unknown operation."""
        root = self._root(operation_name)
        if root is None:
            return
        if not isinstance(params, Mapping):
            raise InputValidationError("Request parameters must be a JSON object.")
        violations: list[str] = []
        _check(root, params, "", violations)
        if violations:
            raise InputValidationError.from_violations(violations)

    def known_members(self, operation_name: str, params: Mapping) -> dict[str, Any]:
        """``params`` without the members the operation's input shape does not have, at any depth."""
        root = self._root(operation_name)
        if root is None:
            return {}
        return _known(root, params)

    # -- overrides and per-operation facts ------------------------------------------------

    def _check_override(self, key: tuple[str, str], pattern: str) -> None:
        struct_name, member = key
        try:
            struct = self._model.shape_for(struct_name)
        except NoShapeFoundError:
            struct = None
        if struct is None or member not in getattr(struct, "members", {}):
            raise ValueError(f"{self.service_name} has no structure {struct_name} with a member {member}")
        if struct.members[member].type_name != "string" or compile_java(pattern) is None:
            raise ValueError(f"override for {struct_name}.{member} must be a valid pattern on a string")

    def _root(self, operation_name: str) -> ShapeFacts | None:
        try:
            return self._roots[operation_name]
        except KeyError:
            if operation_name not in self._names:
                raise KeyError(f"{self.service_name} has no operation {operation_name!r}") from None
        with self._lock:
            if operation_name not in self._roots:
                shape = self._model.operation_model(operation_name).input_shape
                root = None if shape is None else self._book.build(shape)
                self._roots[operation_name] = root  # published only when complete
            return self._roots[operation_name]


# -- checking values ------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _is_timestamp(v: Any) -> bool:
    if isinstance(v, str):  # AWS JSON sends epoch seconds; ISO-8601 strings are accepted too
        try:
            datetime.datetime.fromisoformat(v)
        except ValueError:
            return False
        return True
    return isinstance(v, datetime.datetime) or _is_number(v)


_TYPE_OK = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "long": _is_int,
    "float": _is_number,
    "double": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "timestamp": _is_timestamp,
    "blob": lambda v: isinstance(v, (str, bytes, bytearray)),
    "list": lambda v: isinstance(v, (list, tuple)),
    "map": lambda v: isinstance(v, Mapping),
    "structure": lambda v: isinstance(v, Mapping),
}


def _size(s: ShapeFacts, v: Any) -> int:
    if s.kind == "blob" and isinstance(v, str):
        return len(v.rstrip("=")) * 3 // 4  # base64 on the JSON wire: the decoded size counts
    return len(v)


def _failures(s: ShapeFacts, v: Any) -> list[str]:
    """The constraint texts a well-typed scalar or collection value breaks (not its contents)."""
    failed = []
    if s.kind in SIZED or s.kind in _NUMERIC:
        n = _size(s, v) if s.kind in SIZED else v
        if s.max is not None and n > s.max:
            failed.append(s.texts["max"])
        if s.min is not None and n < s.min:
            failed.append(s.texts["min"])
    if s.kind == "string":
        if s.regex is not None and not matches(s.regex, v):
            failed.append(s.texts["pattern"])
        if s.enum is not None and v not in s.enum:
            failed.append(s.texts["enum"])
    return failed


def _check(s: ShapeFacts, v: Any, path: str, out: list[str]) -> None:
    type_ok = _TYPE_OK.get(s.kind)
    if type_ok is not None and not type_ok(v):
        out.append(_violation(s, v, path, f"Member must be of type {s.kind}"))
        return
    if s.kind == "structure":
        for m in s.members:
            child = v.get(m.name)
            sub = f"{path}.{m.path_name}" if path else m.path_name
            if child is not None:
                _check(m.shape, child, sub, out)
            elif m.required:
                out.append(_violation(m.shape, None, sub, "Member must not be null"))
        return
    out.extend(_violation(s, v, path, text) for text in _failures(s, v))
    if s.kind == "list" and s.item is not None:  # a list shape always has its item shape
        for i, item in enumerate(v, 1):
            _check_item(s.item, item, f"{path}.{i}.member", out)
    elif s.kind == "map":
        _check_map(s, v, path, out)


def _check_item(s: ShapeFacts, v: Any, path: str, out: list[str]) -> None:
    if v is None:
        out.append(_violation(s, None, path, "Member must not be null"))
    else:
        _check(s, v, path, out)


def _check_map(s: ShapeFacts, v: Mapping, path: str, out: list[str]) -> None:
    # Coral reports bad keys (and bad scalar values) once per map, listing the shape's constraints.
    key, value = s.key, s.value
    assert key is not None and value is not None, "a map shape has key and value shapes"
    if any(not isinstance(k, str) or _failures(key, k) for k in v):
        texts = ", ".join(key.texts.values())
        out.append(_violation(s, v, path, f"Map keys must satisfy constraint: [{texts}]"))
    scalar = value.kind not in ("list", "map", "structure")
    type_ok = _TYPE_OK.get(value.kind)
    bad_value = False
    for k, item in v.items():
        if scalar and item is not None and (type_ok is None or type_ok(item)):
            bad_value = bad_value or bool(_failures(value, item))
        else:
            _check_item(value, item, f"{path}.{_abbreviate(str(k))}", out)
    if bad_value:
        texts = ", ".join(value.texts.values())
        out.append(_violation(s, v, path, f"Map value must satisfy constraint: [{texts}]"))


def _known(s: ShapeFacts, v: Any) -> Any:
    if s.kind == "structure" and isinstance(v, Mapping):
        members = {m.name: m.shape for m in s.members}
        return {k: _known(members[k], x) for k, x in v.items() if k in members}
    if s.kind == "list" and isinstance(v, (list, tuple)) and s.item is not None:
        return [_known(s.item, x) for x in v]
    if s.kind == "map" and isinstance(v, Mapping) and s.value is not None:
        return {k: _known(s.value, x) for k, x in v.items()}
    return v


# -- echoing values -------------------------------------------------------------------------


def _violation(s: ShapeFacts, v: Any, path: str, constraint: str) -> str:
    if v is None:
        shown = "Value null"
    elif s.hides:
        shown = "Value"  # Coral's form for sensitive members: the value is left out
    elif s.kind in ("float", "double") and _is_int(v):
        shown = f"Value '{v}.0'"  # Java prints a Float/Double with its fraction
    else:
        shown = f"Value '{_abbreviate(_java_str(v, MAX_ECHO))}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {constraint}"


def _abbreviate(text: str) -> str:
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "..."


def _java_str(v: Any, limit: int) -> str:
    """Java's toString of a value (`[a, b]`, `{k=v}`), cut off soon after `limit` characters."""
    if isinstance(v, str):
        return v[: limit + 1]
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    if isinstance(v, Mapping):
        parts, close = (f"{str(k)[:limit]}={_java_str(x, limit)}" for k, x in v.items()), "}"
        text = "{"
    elif isinstance(v, (list, tuple)):
        parts, close, text = (_java_str(x, limit) for x in v), "]", "["
    else:
        return str(v)[: limit + 1]
    for i, part in enumerate(parts):
        text += (", " if i else "") + part
        if len(text) > limit:
            return text
    return text + close


@functools.cache
def sagemaker_validator() -> RequestValidator:
    """The control-plane validator, with dockyard's local model-data relaxation."""
    return RequestValidator("sagemaker", LOCAL_MODEL_DATA_OVERRIDES)


@functools.cache
def runtime_validator() -> RequestValidator:
    """The runtime validator (InvokeEndpoint and friends): the model as it is."""
    return RequestValidator("sagemaker-runtime")


@functools.cache
def autoscaling_validator() -> RequestValidator:
    """The Application Auto Scaling validator (its model as it is)."""
    return RequestValidator("application-autoscaling")

"""One model, loaded, and the request path through its handlers: bytes in, ``Reply`` out.

``Pipeline`` is what a worker (thread or process) calls per request. It never raises: every
failure becomes a reply with a status and a plain-text body, so a bad request or a failing handler
can never take the server down. Status rules (SageMaker inference toolkit): 415 for a Content-Type
the default input_fn cannot decode, 406 for an Accept the default output_fn cannot produce, 400 for
a malformed body, 500 ``"<ExceptionType>: <message>"`` for a failing handler, or the exception's
own int ``status_code``.

Streaming: when ``predict_fn``/``output_fn`` (or ``transform_fn``) returns an iterator or a
generator, the reply's body is an iterator of ``bytes`` (each ``str`` item encoded as UTF-8) that
the worker runs item by item as the server sends them. Its first item is produced here, so a
handler that fails before anything was sent still gets an error reply.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from dockyard.serving import codecs
from dockyard.serving.errors import (
    InferenceError,
    NotAcceptable,
    StartupError,
    UnsupportedMediaType,
)
from dockyard.serving.frameworks import Framework
from dockyard.serving.frameworks.base import RequestHandler
from dockyard.serving.handlers import ARITY, Context, UserModule, with_context
from dockyard.serving.settings import Settings

log = logging.getLogger("dockyard.serving")

# (HTTP status, body, Content-Type): plain tuples, since one crosses a pipe per request. The body
# is an iterator of chunks when the handlers stream.
Reply = tuple[int, bytes | Iterator[bytes], str]


class Pipeline:
    """The loaded model and the handler chain chosen at start."""

    def __init__(self, settings: Settings, framework: Framework, user: UserModule) -> None:
        self._user = user
        self._decoders = framework.decoders
        self._encoders = framework.encoders
        self._default_accept = settings.default_accept or framework.default_accept
        self._default_content_type = framework.default_content_type
        self._system_properties = {"model_dir": settings.model_dir, "gpu_id": None}
        self._model_dir = settings.model_dir
        fns = user.functions
        self._needs_context = False
        self.load_seconds = 0.0
        self.model = self._load_model(settings, framework)
        self._request_handler: RequestHandler | None = None
        if framework.request_handler is not None:
            self._request_handler = framework.request_handler(self.model, user, settings)

        self._transform_fn = self._bind("transform_fn")
        self._user_input = "input_fn" in fns
        self._input_fn = self._bind("input_fn") or self._default_input
        default_predict = framework.predict_fn
        self._predict_fn = self._bind("predict_fn") or (
            lambda data, model, context: default_predict(data, model)  # type: ignore[misc]  # TensorFlow, which has none, answers through its request handler
        )
        self._output_fn = self._bind("output_fn") or self._default_output
        # A user output_fn (or transform_fn) decides which types it produces, so any Accept is
        # passed through; the default output_fn is limited to the framework's encoders.
        user_output = "output_fn" in fns or self._transform_fn is not None
        self._accept_types = None if user_output else tuple(self._encoders)
        self._checks_content_type = not self._user_input and self._transform_fn is None

    def _bind(self, name: str) -> Callable[..., Any] | None:
        fn = self._user.functions.get(name)
        if fn is None:
            return None
        bound = with_context(fn, ARITY[name])
        self._needs_context |= bound is fn
        return bound

    def _load_model(self, settings: Settings, framework: Framework) -> Any:
        if framework.setup is not None:
            framework.setup(settings)
        # A framework with its own request path (TensorFlow Serving) has no model_fn hook.
        own_path = framework.request_handler is not None
        user_model_fn = None if own_path else self._user.functions.get("model_fn")
        if user_model_fn is not None:
            user_model_fn = with_context(user_model_fn, ARITY["model_fn"])
        where = f"model_fn in {self._user.path}" if user_model_fn else "model_fn"
        started = time.perf_counter()
        try:
            if user_model_fn is None:
                model = framework.model_fn(settings.model_dir, settings)
            else:
                model = user_model_fn(settings.model_dir, self._context(""))
        except (Exception, SystemExit) as exc:
            raise StartupError(
                f"{where} failed for {settings.model_dir}: {type(exc).__name__}: {exc}"
            ) from exc
        self.load_seconds = time.perf_counter() - started
        return model

    def _context(self, custom_attributes: str) -> Context:
        return Context(self._model_dir, custom_attributes, self._system_properties)

    def __call__(
        self, body: bytes, content_type: str, accept: str, custom_attributes: str = ""
    ) -> Reply:
        """Run one request through the handlers. Header values are passed raw ("" if absent)."""
        stage = "input_fn"
        try:
            if self._request_handler is not None:
                stage = "the request handler"
                return self._request_handler(body, content_type, accept, custom_attributes)
            media = codecs.media_type(content_type) if content_type else self._default_content_type
            if self._checks_content_type and media not in self._decoders:
                raise UnsupportedMediaType(
                    f"Content-Type {media} is not supported; supported: {', '.join(self._decoders)}"
                )
            response_type = codecs.negotiate(accept, self._accept_types, self._default_accept)
            if response_type is None:
                wanted = accept or self._default_accept
                raise NotAcceptable(
                    f"Accept {wanted} is not supported; supported: {', '.join(self._encoders)}"
                )
            context = self._context(custom_attributes) if self._needs_context else None
            data: bytes | str = body
            if media in codecs.TEXT_TYPES and (self._user_input or self._transform_fn):
                data = codecs.decode_text(body)
            if self._transform_fn is not None:
                stage = "transform_fn"
                result = self._transform_fn(self.model, data, media, response_type, context)
            else:
                decoded = self._input_fn(data, media, context)
                stage = "predict_fn"
                prediction = self._predict_fn(decoded, self.model, context)
                stage = "output_fn"
                result = self._output_fn(prediction, response_type, context)
            return _reply(result, response_type, stage)
        except InferenceError as exc:
            return exc.status_code, str(exc).encode(), codecs.TEXT
        except (Exception, SystemExit) as exc:
            # SystemExit too: a handler calling sys.exit() must fail its request, not the server.
            log.exception("%s failed", stage)
            status = getattr(exc, "status_code", 500)
            if not isinstance(status, int) or not 400 <= status <= 599:
                status = 500
            return status, f"{type(exc).__name__}: {exc}".encode(), codecs.TEXT

    def _default_input(self, body: bytes | str, media: str, context: Context | None) -> Any:
        return self._decoders[media](body)

    def _default_output(self, prediction: Any, accept: str, context: Context | None) -> Any:
        # A predict_fn that yields streams its items as they are.
        if isinstance(prediction, Iterator):
            return prediction
        return self._encoders[accept](prediction)


def _reply(result: Any, accept: str, stage: str) -> Reply:
    """An output_fn/transform_fn result → a reply; ``(body, content_type)`` overrides the type."""
    content_type = accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result[0], result[1] or accept
    if isinstance(result, str):
        return 200, result.encode(), str(content_type)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, bytes(result), str(content_type)
    if isinstance(result, Iterator):
        chunks = _encoded(result, stage)
        first = next(chunks, b"")  # here, so that a failure before the first chunk is a 500 reply
        return 200, itertools.chain((first,), chunks), str(content_type)
    raise TypeError(
        f"{stage} returned {type(result).__name__}; return bytes, str, an iterator of them "
        "or (body, content_type)"
    )


def _encoded(items: Iterator[Any], stage: str) -> Iterator[bytes]:
    for item in items:
        if isinstance(item, str):
            yield item.encode()
        elif isinstance(item, (bytes, bytearray, memoryview)):
            yield bytes(item)
        else:
            raise TypeError(f"{stage} yielded {type(item).__name__}; yield bytes or str")

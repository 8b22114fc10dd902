"""The two kinds of failure the model server knows: it cannot start, or one request fails.

``StartupError`` carries the one-line reason printed as the last line of stderr (dockyard quotes a
failed container's last log lines to the user). ``InferenceError`` and its subclasses carry an HTTP
status and a message that becomes the response body; user code may raise any exception with an int
``status_code`` attribute to the same effect, as the SageMaker inference toolkit's
``BaseInferenceToolkitError`` does.
"""

from __future__ import annotations


class StartupError(Exception):
    """The server cannot start. ``str(error)`` is the human-readable one-line reason."""


class InferenceError(Exception):
    """A request failed with ``status_code``; ``str(error)`` is the response body."""

    status_code = 500


class BadRequest(InferenceError):
    """The body cannot be decoded as its Content-Type says (malformed CSV, JSON or npy)."""

    status_code = 400


class NotAcceptable(InferenceError):
    """No type in the request's Accept header can be produced."""

    status_code = 406


class UnsupportedMediaType(InferenceError):
    """The request's Content-Type has no decoder."""

    status_code = 415

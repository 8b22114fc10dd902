"""What a framework contributes: the defaults used for handlers the user module does not define."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.serving import codecs
from dockyard.serving.settings import Settings


@dataclass(frozen=True)
class Framework:
    """Default ``model_fn``/``predict_fn`` and the content types the default input/output handle.

    ``model_fn`` receives the settings too, for loader options such as DOCKYARD_RESTRICTED_UNPICKLE.
    """

    name: str
    model_fn: Callable[[str, Settings], Any]
    predict_fn: Callable[[Any, Any], Any]
    decoders: Mapping[str, codecs.Decoder] = field(default_factory=lambda: dict(codecs.DECODERS))
    encoders: Mapping[str, codecs.Encoder] = field(default_factory=lambda: dict(codecs.ENCODERS))

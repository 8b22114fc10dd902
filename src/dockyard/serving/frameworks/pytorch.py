"""PyTorch, as SageMaker's PyTorch inference toolkit serves it: TorchScript by default.

* Model: ``model.pt``, else the only ``*.pt`` / ``*.pth`` file, loaded with ``torch.jit.load`` onto
  the CPU. Anything else — a ``state_dict`` in ``model.pth``, say — needs a ``model_fn`` in
  ``inference.py`` that builds the module and loads it, as in the toolkit.
* Input: ``application/json`` and ``text/csv`` become float32 tensors (the toolkit's
  ``torch.FloatTensor``); ``application/x-npy`` keeps its dtype (``torch.from_numpy``).
* Prediction: ``model.eval()`` and ``torch.no_grad()``, whether the model came from the default
  ``model_fn`` or the user's.
* Output: tensors (also inside tuples, lists and dicts) become arrays, then JSON, CSV or npy.
* Threads: the intra-op pool is capped at this worker's share of the CPUs, so several containers
  or workers on one instance do not oversubscribe it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dockyard.serving import codecs
from dockyard.serving.errors import BadRequest
from dockyard.serving.frameworks.base import Framework, model_file, threads_per_worker
from dockyard.serving.settings import Settings

MODEL_FILE = "model.pt"
_SUFFIXES = (".pt", ".pth")


def setup(settings: Settings) -> None:
    # Never raise it: OMP_NUM_THREADS=1 set by the user stays 1.
    torch.set_num_threads(min(torch.get_num_threads(), threads_per_worker(settings)))


def model_fn(model_dir: str, settings: Settings) -> Any:
    """The TorchScript module in ``model_dir``."""
    # The toolkit's rule: model.pt, else the one .pt or .pth file there is.
    path = model_file(
        Path(model_dir), MODEL_FILE, lambda p: p.suffix in _SUFFIXES, ".pt or .pth file"
    )
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise RuntimeError(
            f"{path.name} is not a TorchScript file (save it with torch.jit.save), or define "
            f"model_fn in inference.py to load it: {exc}"
        ) from None


def predict_fn(data: Any, model: Any) -> Any:
    """``model(data)`` in eval mode without autograd."""
    if not isinstance(data, torch.Tensor):
        data = torch.as_tensor(data)
    with torch.no_grad():
        model.eval()
        return model(data)


def to_numpy(prediction: Any) -> Any:
    """Tensors, also nested in tuples, lists and dicts, as numpy arrays."""
    if isinstance(prediction, torch.Tensor):
        return prediction.detach().cpu().numpy()
    if isinstance(prediction, (tuple, list)):
        return [to_numpy(p) for p in prediction]
    if isinstance(prediction, dict):
        return {k: to_numpy(v) for k, v in prediction.items()}
    return prediction


def _float_tensor(decode: codecs.Decoder) -> codecs.Decoder:
    def decode_to_tensor(body: bytes | str) -> torch.Tensor:
        array = decode(body)
        try:
            return torch.from_numpy(np.asarray(array, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"the body is not an array of numbers: {exc}") from None

    return decode_to_tensor


def _arrays(encode: codecs.Encoder) -> codecs.Encoder:
    return lambda prediction: encode(to_numpy(prediction))


FRAMEWORK = Framework(
    name="pytorch",
    model_fn=model_fn,
    predict_fn=predict_fn,
    decoders={
        codecs.JSON: _float_tensor(codecs.decode_json),
        codecs.CSV: _float_tensor(codecs.decode_csv),
        codecs.NPY: lambda body: torch.from_numpy(codecs.decode_npy(body)),
    },
    encoders={kind: _arrays(encode) for kind, encode in codecs.ENCODERS.items()},
    setup=setup,
)

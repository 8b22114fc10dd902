"""Restricted loading of joblib and pickle model files (DOCKYARD_RESTRICTED_UNPICKLE=true).

Loading a pickle is running code: a pickle names callables (``os.system`` through ``__reduce__``,
say) and the unpickler calls them. ``joblib.load`` is pickle too. Serving a model file from a
source you do not trust therefore hands that source your server. This loader narrows what a file
can name, in the spirit of KServe's ``_safe_unpickle.py``:

* classes from the packages a scikit-learn model is made of: sklearn, numpy, scipy, joblib and
  collections (minus the few classes below that touch files or processes);
* the handful of functions numpy and Cython objects are rebuilt with, and numpy ufuncs;
* a tiny set of builtins (containers and scalars) and the ``copyreg`` / ``_codecs`` helpers.

Anything else — ``posix.system``, ``builtins.eval``, any other function even inside numpy
(``numpy.load`` would unpickle without limits) — fails the load with an error naming the global,
before the global is imported or called. It also refuses joblib's pre-0.10 formats, whose loaders
bypass the restriction. This narrows the attack surface; it is not a sandbox: still serve only
models from sources you trust.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

_ALLOWED_PACKAGES = frozenset({"sklearn", "numpy", "scipy", "joblib", "collections"})

# Classes inside the allowed packages whose constructors reach files, processes or a second,
# unrestricted unpickler.
_DENIED_MODULES = (
    "joblib.numpy_pickle_compat",  # NDArrayWrapper: np.load(..., allow_pickle=True) of a side file
    "joblib.externals",
    "joblib.memory",
    "joblib.parallel",
    "joblib.pool",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.testing",
)
_DENIED_CLASSES = frozenset({"memmap", "DataSource"})

# Functions that only rebuild objects of already-allowed types.
_RECONSTRUCTORS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_frombuffer"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
    }
)

_SAFE_NAMES = {
    "builtins": frozenset(
        {
            "object",
            "bool",
            "int",
            "float",
            "complex",
            "str",
            "bytes",
            "bytearray",
            "list",
            "tuple",
            "dict",
            "set",
            "frozenset",
            "slice",
            "range",
        }
    ),
    "copyreg": frozenset({"_reconstructor", "__newobj__", "__newobj_ex__"}),
    "_codecs": frozenset({"encode"}),
}

# joblib < 0.10 files start with this prefix; joblib reads them with its own, unrestricted loader.
_OLD_JOBLIB_PREFIX = b"ZF"

_PATCH_LOCK = threading.Lock()


class ForbiddenGlobal(pickle.UnpicklingError):
    """The model file names a global outside the allowlist."""


def _check(module: str, name: str, resolve: Any) -> Any:
    """Resolve ``module.name`` with ``resolve`` if the allowlist permits it, else raise."""
    allowed_names = _SAFE_NAMES.get(module)
    if allowed_names is not None:
        if name in allowed_names:
            return resolve(module, name)
        raise _forbidden(module, name)
    package = module.split(".", 1)[0]
    if package not in _ALLOWED_PACKAGES or module.startswith(_DENIED_MODULES):
        raise _forbidden(module, name)
    if name.startswith("__pyx_unpickle_") or (module, name) in _RECONSTRUCTORS:
        # Cython-generated and numpy reconstructors rebuild one fixed type each.
        return resolve(module, name)
    obj = resolve(module, name)
    if isinstance(obj, type) and obj.__name__ not in _DENIED_CLASSES:
        return obj
    import numpy

    if isinstance(obj, numpy.ufunc):
        return obj
    raise _forbidden(module, name)


def _forbidden(module: str, name: str) -> ForbiddenGlobal:
    return ForbiddenGlobal(
        f"forbidden global {module}.{name}: DOCKYARD_RESTRICTED_UNPICKLE=true only allows classes "
        "from sklearn, numpy, scipy, joblib and collections and a few builtins; loading this file "
        "could run arbitrary code (unset DOCKYARD_RESTRICTED_UNPICKLE only if you trust it)"
    )


# The pure-Python unpickler, as joblib uses for nested streams: it reads no further than the pickle
# it loads, so joblib can go on reading the file after it.
class _RestrictedPickle(pickle._Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _check(module, name, super().find_class)


def _restricted_numpy_unpickler() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class RestrictedNumpyUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str) -> Any:
            return _check(module, name, super().find_class)

        def load_build(self) -> None:
            # An object-dtype array is stored as a nested pickle; joblib < 1.6 reads it with a bare
            # pickle.load, so read it here with the same restrictions.
            state, target = self.stack[-1], self.stack[-2]
            dtype = state.get("dtype") if isinstance(state, dict) else None
            if isinstance(target, NumpyArrayWrapper) and getattr(dtype, "hasobject", False):
                del self.stack[-2:]
                self.stack.append(_RestrictedPickle(self.file_handle).load())
                return
            super().load_build()

        dispatch[pickle.BUILD[0]] = load_build

    return RestrictedNumpyUnpickler


def restricted_load(path: Path) -> Any:
    """Load a joblib or pickle file; ``ForbiddenGlobal`` for a global outside the allowlist."""
    import joblib
    import joblib.numpy_pickle as numpy_pickle

    with open(path, "rb") as stream:
        if stream.read(len(_OLD_JOBLIB_PREFIX)) == _OLD_JOBLIB_PREFIX:
            raise ForbiddenGlobal(
                f"{path} is in the joblib < 0.10 format, which cannot be loaded with restrictions; "
                "save the model again with a current joblib"
            )
    # joblib.load builds its unpickler from this module attribute and offers no hook to pass one,
    # so the restricted subclass stands in for the duration of the load.
    with _PATCH_LOCK:
        original = numpy_pickle.NumpyUnpickler
        numpy_pickle.NumpyUnpickler = _restricted_numpy_unpickler()
        try:
            return joblib.load(path)
        finally:
            numpy_pickle.NumpyUnpickler = original

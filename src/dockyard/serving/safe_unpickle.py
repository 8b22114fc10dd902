"""Restricted loading of joblib and pickle model files (DOCKYARD_RESTRICTED_UNPICKLE=true).

Loading a pickle is running code: a pickle names callables (``os.system`` through ``__reduce__``,
say) and the unpickler calls them. ``joblib.load`` is pickle too. Serving a model file from a
source you do not trust therefore hands that source your server. This loader narrows what a file
can name, in the spirit of KServe's ``_safe_unpickle.py``, by checking the *object* every global
resolves to, not the name it is written under:

* a name is resolved attribute by attribute, and every step but the last must be a class (a
  nested class's qualified name); walking through a module attribute is refused, so
  ``sklearn.utils`` + ``fixes.np.f2py.subprocess.Popen`` (protocol 4's dotted names) goes nowhere;
* the object must then be a class *defined* in sklearn, numpy, scipy, collections or joblib's
  array wrappers (minus the modules and classes below that touch files, processes or code), a numpy
  ufunc, a Cython ``__pyx_unpickle_*`` helper of those packages, or one of a few named objects:
  scalar and container builtins, the ``copyreg`` and ``_codecs`` helpers and the functions numpy
  rebuilds arrays, scalars and random generators with.

Anything else — ``posix.system``, ``builtins.eval``, any other function even inside numpy
(``numpy.load`` would unpickle without limits), a method reached through an allowed class — fails
the load with an error naming the global, before anything of it is called; only modules of the
allowed packages are ever imported. It also refuses joblib's pre-0.10 formats, whose loaders
bypass the restriction. This narrows the attack surface; it is not a sandbox: still serve only
models from sources you trust.
"""

from __future__ import annotations

import _compat_pickle
import functools
import importlib
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

_ALLOWED_PACKAGES = frozenset({"sklearn", "numpy", "scipy", "collections"})
# Of joblib, only the wrappers its own format stores arrays in.
_ALLOWED_MODULES = frozenset({"joblib.numpy_pickle"})

# Modules inside the allowed packages that are neither imported nor have classes loaded from:
# they read or write files, start processes, compile or run code, or load unrestricted pickles.
_DENIED_MODULES = (
    "numpy.ctypeslib",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.lib._datasource",
    "numpy.lib._format_impl",
    "numpy.lib._iotools",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "numpy.lib.npyio",
    "numpy.testing",
    "numpy._pytesttester",
    "scipy._lib",
    "scipy.datasets",
    "scipy.io",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "sklearn.utils.parallel",
)
# Classes outside those modules whose constructors open files.
_DENIED_CLASSES = frozenset({("numpy", "memmap"), ("numpy", "DataSource")})

# Named objects allowed whatever the rules above say, as (module, qualified name).
_NAMED = (
    *(
        ("builtins", name)
        for name in (
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
        )
    ),
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("copyreg", "__newobj_ex__"),
    ("_codecs", "encode"),
    # Functions that only rebuild objects of already-allowed types.
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
)

# joblib < 0.10 files start with this prefix; joblib reads them with its own, unrestricted loader.
_OLD_JOBLIB_PREFIX = b"ZF"

_PATCH_LOCK = threading.Lock()


class ForbiddenGlobal(pickle.UnpicklingError):
    """The model file names a global outside the allowlist."""


def _package_allows(module: str) -> bool:
    """Whether classes of ``module`` may be loaded: an allowed package, none of the denied modules."""
    if module in _ALLOWED_MODULES:
        return True
    if module.split(".", 1)[0] not in _ALLOWED_PACKAGES:
        return False
    return not any(
        module == denied or module.startswith(denied + ".")
        for denied in _DENIED_MODULES
    )


def _lookup(module: str, name: str) -> Any:
    """``module.name`` walked attribute by attribute; through classes only, never modules."""
    target: Any = importlib.import_module(module)
    parts = name.split(".")
    for depth, part in enumerate(parts):
        if depth and not isinstance(target, type):
            raise AttributeError(part)
        target = getattr(target, part)
    return target


@functools.cache
def _named_objects() -> dict[int, Any]:
    """The named objects of ``_NAMED`` that exist in this environment, by identity."""
    found: dict[int, Any] = {}
    for module, name in _NAMED:
        # numpy 1 has no numpy._core; numpy 2 keeps numpy.core as a deprecated shim.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                obj = _lookup(module, name)
            except (ImportError, AttributeError):
                continue
        found[id(obj)] = obj
    return found


def _permitted(obj: Any) -> bool:
    if _named_objects().get(id(obj)) is obj:
        return True
    if type(obj).__name__ == "ufunc" and type(obj).__module__ == "numpy":
        return True  # elementwise arithmetic, looked up in an allowed module
    defined_in = getattr(obj, "__module__", None)
    if not isinstance(defined_in, str) or not _package_allows(defined_in):
        return False
    if isinstance(obj, type):
        return (defined_in.split(".", 1)[0], obj.__name__) not in _DENIED_CLASSES
    # Cython writes one such helper per cdef class: it rebuilds an instance of that class.
    return type(obj).__name__ == "builtin_function_or_method" and getattr(
        obj, "__name__", ""
    ).startswith("__pyx_unpickle_")


def _check(module: str, name: str, protocol: int) -> Any:
    """The object ``module.name`` names if the allowlist permits it, else ``ForbiddenGlobal``."""
    if protocol < 3:  # Python 2 names, as pickle.Unpickler.find_class maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    # Import only what an allowed object may live in: importing is running the module's code.
    if not _package_allows(module) and (module, name) not in _NAMED:
        raise _forbidden(module, name)
    try:
        obj = _lookup(module, name)
    except (ImportError, AttributeError):
        raise _forbidden(module, name) from None
    if not _permitted(obj):
        raise _forbidden(module, name)
    return obj


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
        return _check(module, name, self.proto)  # type: ignore[attr-defined]  # set by load()


def _restricted_numpy_unpickler() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class RestrictedNumpyUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str) -> Any:
            return _check(module, name, self.proto)  # set by load()

        def load_build(self) -> None:
            # An object-dtype array is stored as a nested pickle; joblib < 1.6 reads it with a bare
            # pickle.load, so read it here with the same restrictions.
            state, target = self.stack[-1], self.stack[-2]
            dtype = state.get("dtype") if isinstance(state, dict) else None
            if isinstance(target, NumpyArrayWrapper) and getattr(
                dtype, "hasobject", False
            ):
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

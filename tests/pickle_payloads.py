"""Pickle payloads written opcode by opcode, as an attacker would: a corpus of known exploit
shapes, each of which runs a command, writes a file or reaches a dangerous callable when loaded by
a plain unpickler."""

from __future__ import annotations

import struct

# sklearn.utils.fixes imports numpy as np; numpy imports f2py, which imports subprocess.
POPEN_WALK = ("sklearn.utils", "fixes.np.f2py.subprocess.Popen")


def text(value: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE of ``value``."""
    data = value.encode()
    if len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    return b"X" + struct.pack("<I", len(data)) + data


def stack_global(module: str, name: str) -> bytes:
    """Protocol 4's STACK_GLOBAL: module and (possibly dotted) name from the stack."""
    return text(module) + text(name) + b"\x93"


def proto4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def call(func: bytes, *args: bytes) -> bytes:
    """REDUCE ``func`` with ``args`` (each already pickled)."""
    return func + b"(" + b"".join(args) + b"tR"


def popen_touch(marker: str) -> bytes:
    """``Popen(["touch", marker])``, reached from sklearn.utils by a dotted name."""
    argv = b"](" + text("touch") + text(marker) + b"e"
    return proto4(call(stack_global(*POPEN_WALK), argv))


def corpus(marker: str) -> dict[str, tuple[bytes, str]]:
    """name → (payload, the global the refusal must name)."""
    touch = f"touch {marker}"
    shell = f"import os; os.system({touch!r})"
    return {
        "GLOBAL os.system": (f"cos\nsystem\n(S'{touch}'\ntR.".encode(), "os.system"),
        "GLOBAL posix.system": (
            f"cposix\nsystem\n(S'{touch}'\ntR.".encode(),
            "posix.system",
        ),
        "INST os.system": (f"(S'{touch}'\nios\nsystem\n.".encode(), "os.system"),
        "OBJ os.system": (f"(cos\nsystem\nS'{touch}'\no.".encode(), "os.system"),
        "STACK_GLOBAL dotted walk to subprocess.Popen": (
            popen_touch(marker),
            ".".join(POPEN_WALK),
        ),
        "STACK_GLOBAL numpy.f2py walk": (
            proto4(call(stack_global("numpy", "f2py.subprocess.Popen"), text(touch))),
            "numpy.f2py.subprocess.Popen",
        ),
        "builtins.eval": (
            proto4(call(stack_global("builtins", "eval"), text(shell))),
            "builtins.eval",
        ),
        "builtins.exec": (
            proto4(call(stack_global("builtins", "exec"), text(shell))),
            "builtins.exec",
        ),
        "builtins.getattr": (
            proto4(
                call(
                    stack_global("builtins", "getattr"),
                    stack_global("builtins", "dict"),
                    text("fromkeys"),
                )
            ),
            "builtins.getattr",
        ),
        "builtins.__import__": (
            proto4(call(stack_global("builtins", "__import__"), text("os"))),
            "builtins.__import__",
        ),
        "builtins.open": (
            proto4(call(stack_global("builtins", "open"), text(marker), text("w"))),
            "builtins.open",
        ),
        "__builtin__.eval (protocol 2 names)": (
            f"\x80\x02c__builtin__\neval\n(X{struct.pack('<I', len(shell)).decode('latin-1')}{shell}tR.".encode(
                "latin-1"
            ),
            "builtins.eval",
        ),
        "method walk from an allowed builtin": (
            proto4(
                call(
                    stack_global("builtins", "object.__subclasses__"),
                    stack_global("builtins", "object"),
                )
            ),
            "builtins.object.__subclasses__",
        ),
        "method walk from an allowed class": (
            proto4(call(stack_global("numpy", "ndarray.tofile"), text(marker))),
            "numpy.ndarray.tofile",
        ),
        "a module object": (proto4(stack_global("sklearn", "os")), "sklearn.os"),
        "numpy.load": (
            proto4(call(stack_global("numpy", "load"), text(marker))),
            "numpy.load",
        ),
        "numpy.memmap writes a file": (
            proto4(
                call(
                    stack_global("numpy", "memmap"),
                    text(marker),
                    stack_global("numpy", "uint8"),
                    text("w+"),
                )
            ),
            "numpy.memmap",
        ),
        "numpy.testing runstring": (
            proto4(
                call(
                    stack_global("numpy.testing._private.utils", "runstring"),
                    text(shell),
                    b"}",
                )
            ),
            "numpy.testing._private.utils.runstring",
        ),
        "numpy.testing through a module walk": (
            proto4(call(stack_global("numpy", "testing.runstring"), text(shell), b"}")),
            "numpy.testing.runstring",
        ),
        "numpy NpzFile": (
            proto4(call(stack_global("numpy.lib.npyio", "NpzFile"), text(marker))),
            "numpy.lib.npyio.NpzFile",
        ),
        "scipy.io FortranFile": (
            proto4(
                call(stack_global("scipy.io", "FortranFile"), text(marker), text("w"))
            ),
            "scipy.io.FortranFile",
        ),
        "collections.namedtuple (exec inside)": (
            proto4(
                call(stack_global("collections", "namedtuple"), text("T"), text("a"))
            ),
            "collections.namedtuple",
        ),
        "joblib.load": (
            proto4(call(stack_global("joblib", "load"), text(marker))),
            "joblib.load",
        ),
        "joblib NDArrayWrapper": (
            proto4(stack_global("joblib.numpy_pickle_compat", "NDArrayWrapper")),
            "joblib.numpy_pickle_compat.NDArrayWrapper",
        ),
        "copyreg.add_extension": (
            proto4(
                call(
                    stack_global("copyreg", "add_extension"),
                    text("os"),
                    text("system"),
                    b"K\x01",
                )
            ),
            "copyreg.add_extension",
        ),
        "copyreg._reconstructor of Popen": (
            proto4(
                call(
                    stack_global("copyreg", "_reconstructor"),
                    stack_global(*POPEN_WALK),
                    stack_global("builtins", "object"),
                    b"N",
                )
            ),
            ".".join(POPEN_WALK),
        ),
        "copyreg._reconstructor of memmap": (
            proto4(
                call(
                    stack_global("copyreg", "_reconstructor"),
                    stack_global("numpy", "memmap"),
                    stack_global("numpy", "ndarray"),
                    text(marker),
                )
            ),
            "numpy.memmap",
        ),
        "numpy _reconstruct of memmap": (
            proto4(
                call(
                    stack_global("numpy._core.multiarray", "_reconstruct"),
                    stack_global("numpy", "memmap"),
                    b"K\x00\x85",
                    text("b"),
                )
            ),
            "numpy.memmap",
        ),
    }

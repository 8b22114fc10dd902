"""Extend without Docker: a model's ``requirements.txt``, installed into a cached virtualenv.

SageMaker's framework containers pip-install the ``requirements.txt`` next to the entry point
(``<model>/code/`` or SAGEMAKER_SUBMIT_DIRECTORY) when they start. The process runtime does the
same, once per distinct set of requirements: a virtualenv ``<state>/layers/<key>`` whose
site-packages extends the server's own (a ``.pth`` file adds them after its own), so pip installs
only what the server's environment lacks, and a requirement pinning another version of a package
the server has shadows that package for this model instead of replacing it for everyone. The
model server then runs on the layer's interpreter.

The key hashes the requirement files and the interpreter. A marker written after pip succeeds
makes a layer reusable: the next container with the same requirements starts without pip. A lock
per key keeps two containers from installing one layer at once (one server per state directory);
a layer without its marker (pip failed, or the server died mid-install) is rebuilt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import sys
import sysconfig
import venv
from pathlib import Path

from dockyard.runtime.processes import open_log

log = logging.getLogger("dockyard.runtime.layers")

REQUIREMENTS = "requirements.txt"
MARKER = ".dockyard-complete"


class LayerError(Exception):
    """pip could not install the requirements; its output went to the container's log."""


def requirement_files(code_dir: Path | None, model_dir: Path) -> list[Path]:
    """The requirements.txt files beside the entry point: SAGEMAKER_SUBMIT_DIRECTORY, ``code/``."""
    candidates = [d / REQUIREMENTS for d in (code_dir, model_dir / "code") if d is not None]
    files: list[Path] = []
    for path in candidates:
        if path.is_file() and path.resolve() not in {f.resolve() for f in files}:
            files.append(path)
    return files


def layer_key(files: list[Path]) -> str:
    """Same requirements on the same interpreter → same key."""
    digest = hashlib.sha256(f"{sys.prefix}\0{sys.version}\0".encode())
    for path in files:
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _site_dirs() -> list[str]:
    """The server's site-packages directories (a virtualenv's, the system's, the user's)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


class Layers:
    """The virtualenv layers under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    async def python_for(self, files: list[Path], log_path: Path, timeout: float) -> Path:
        """The interpreter of the layer for ``files``, installed first unless it is cached.

        pip's output is appended to ``log_path`` (the container's log); ``LayerError`` if pip
        fails or runs past ``timeout`` seconds.
        """
        key = layer_key(files)
        layer = self.root / key
        async with self._locks.setdefault(key, asyncio.Lock()):
            if (layer / MARKER).is_file():
                log.info("reusing layer %s for %s (pip not run)", key, ", ".join(map(str, files)))
            else:
                log.info("installing %s into layer %s", ", ".join(map(str, files)), key)
                await self._install(layer, files, log_path, timeout)
                log.info("installed layer %s", key)
        return layer / "bin" / "python"

    async def _install(self, layer: Path, files: list[Path], log_path: Path, timeout: float) -> None:
        shutil.rmtree(layer, ignore_errors=True)
        await asyncio.to_thread(venv.create, layer, with_pip=False, symlinks=True)
        site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(layer), "platbase": str(layer)}))
        lines = [f"import site; site.addsitedir({d!r})" for d in _site_dirs()]
        (site_packages / "_dockyard_base.pth").write_text("\n".join(lines) + "\n")
        python = layer / "bin" / "python"
        command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-input",
                   "--disable-pip-version-check", *(arg for f in files for arg in ("-r", str(f)))]
        with open_log(log_path) as out:
            out.write(f"dockyard: pip install -r {' -r '.join(map(str, files))}\n".encode())
            out.flush()
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                shutil.rmtree(layer, ignore_errors=True)
                raise LayerError(f"pip install did not finish within {timeout:g} s") from None
            except asyncio.CancelledError:
                proc.kill()
                await proc.wait()
                raise
        if code != 0:
            shutil.rmtree(layer, ignore_errors=True)
            raise LayerError(f"pip install exited with code {code}")
        (layer / MARKER).write_text(json.dumps({"requirements": [str(f) for f in files]}) + "\n")

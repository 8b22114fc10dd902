"""The download cache: remote objects kept on disk by URL and version.

Layout: ``<root>/<hash of URL>-<last URL segment>/<hash of version>``. An entry only ever appears
by an atomic rename of a finished download, so a reader never sees half a file, whatever other
threads or processes are doing. Within one cache, downloads of the same URL are serialized so
concurrent materializations fetch it once. When a new version lands, older versions of that URL
are deleted; readers already holding them open keep reading (POSIX unlink semantics). A download
larger than ``max_bytes`` (a remote object that never ends, say) is cut off with an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from dockyard.artifacts.policy import Budget
from dockyard.artifacts.sources import RemoteObject

_TEMP_PREFIX = ".download-"


class DownloadCache:
    """Keeps downloads under ``root``; ``open`` hands out a read handle on the cached copy."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @contextmanager
    def open(self, obj: RemoteObject) -> Iterator[BinaryIO]:
        """A binary handle on ``obj``'s content, downloading it unless this version is cached.

        An object with no version is downloaded every time into a temporary file that is removed
        when the block ends.
        """
        with self._lock_for(obj.url):
            handle, temporary = self._fetch(obj)
        try:
            yield handle
        finally:
            handle.close()
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    def _fetch(self, obj: RemoteObject) -> tuple[BinaryIO, Path | None]:
        folder = self._folder(obj.url)
        if obj.version is not None:
            try:
                return (self._entry(folder, obj.version).open("rb"), None)
            except FileNotFoundError:
                pass
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=_TEMP_PREFIX)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                capped = cast(BinaryIO, _Capped(out, Budget(self._max_bytes), obj.url))
                received = obj.download(capped)
            # Opened before the rename so a concurrent prune can never pull it from under us.
            handle = temporary.open("rb")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        # Without a version from before the download there is no way to find this copy again.
        if obj.version is None or received is None:
            return (handle, temporary)
        entry = self._entry(folder, received)
        try:
            os.replace(temporary, entry)
        except BaseException:
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
        _prune(folder, keep=entry)
        return (handle, None)

    def _folder(self, url: str) -> Path:
        tail = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rsplit("/", 1)[-1])[:60]
        return self._root / f"{_digest(url)}-{tail}"

    @staticmethod
    def _entry(folder: Path, version: str) -> Path:
        return folder / _digest(version)

    def _lock_for(self, url: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(url, threading.Lock())


class _Capped:
    """A file object for downloads: each write is taken from ``budget`` first."""

    def __init__(self, out: BinaryIO, budget: Budget, url: str) -> None:
        self._out, self._budget, self._url = out, budget, url

    def write(self, data: bytes) -> int:
        self._budget.take(len(data), self._url)
        return self._out.write(data)


def _prune(folder: Path, keep: Path) -> None:
    for path in folder.iterdir():
        # Temporary files belong to downloads in progress, possibly in another process.
        if path != keep and not path.name.startswith(_TEMP_PREFIX):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                # Still open somewhere on a platform that forbids that; the next prune gets it.
                pass


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]

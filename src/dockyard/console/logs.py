"""Following container log files: the tail of each, then the lines appended since.

The runtimes write every container's stdout/stderr to a file; the console follows those files
by offset (like ``tail -f``), so a line is sent once, and only complete lines are sent.
"""

from __future__ import annotations

from pathlib import Path

# At most this much of a file is read per step: a container that floods its log cannot make
# the console read megabytes a second.
MAX_STEP_BYTES = 64 * 1024
_TAIL_BYTES = 64 * 1024


class LogFollower:
    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}
        # The part of the last line read that has no newline yet.
        self._partial: dict[Path, bytes] = {}

    def tail(self, path: Path, lines: int) -> list[str]:
        """The last ``lines`` complete lines up to where following has got to (starting to
        follow the file at its end if it was not followed yet)."""
        followed = path in self._offsets
        # An unfinished last line is left to new_lines, which sends it once it is complete.
        end = self._offsets[path] - len(self._partial.get(path, b"")) if followed else _size(path)
        start = max(0, end - _TAIL_BYTES)
        data = _read(path, start, end - start)
        if not followed:
            complete = data.rfind(b"\n") + 1
            data = data[:complete]
            self._offsets[path] = start + complete
        text = data.decode("utf-8", "replace").splitlines()
        if start > 0 and text:
            text = text[1:]  # the first line was cut by the byte window
        return text[-lines:]

    def new_lines(self, path: Path) -> list[str]:
        """Complete lines appended since the last call (or since ``tail``)."""
        offset = self._offsets.setdefault(path, 0)
        size = _size(path)
        if size < offset:  # truncated or replaced: start again from its beginning
            offset, self._partial[path] = 0, b""
        data = _read(path, offset, min(size - offset, MAX_STEP_BYTES))
        self._offsets[path] = offset + len(data)
        data = self._partial.pop(path, b"") + data
        complete, newline, rest = data.rpartition(b"\n")
        if rest:
            self._partial[path] = rest
        return complete.decode("utf-8", "replace").split("\n") if newline else []

    def forget(self, alive: set[Path]) -> None:
        """Stop following files that are gone from every followed endpoint."""
        for path in set(self._offsets) - alive:
            self._offsets.pop(path, None)
            self._partial.pop(path, None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read(path: Path, offset: int, length: int) -> bytes:
    if length <= 0:
        return b""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    except OSError:
        return b""

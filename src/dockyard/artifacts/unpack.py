"""Safe unpacking of ``model.tar.gz`` / ``sourcedir.tar.gz`` archives, and safe relative paths.

Model archives come from users and from S3 buckets other people can write to, so every member is
checked before it touches the disk: no absolute paths, nothing that lands outside the destination
(``..`` or through a symlink), no link pointing outside it, no device files or FIFOs. The checks are
our own so that behaviour is the same on every Python; where tarfile has extraction filters
(3.10.12+/3.11.4+) the ``data`` filter runs as well, as a second line of defence.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.policy import Budget

_GZIP_MAGIC = b"\x1f\x8b"
# What a member costs the budget at least: a filesystem block. Without it an archive of millions
# of empty files (a few hundred kilobytes compressed) would cost nothing and exhaust the inodes.
MEMBER_BYTES = 4096
# tarfile.FilterError exists only where extraction filters do.
_FILTER_ERRORS: tuple[type[BaseException], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)


def extract_tar_gz(archive: BinaryIO, dest: Path, label: str, budget: Budget) -> None:
    """Extract the gzip'd tar read from ``archive`` into ``dest``; ``label`` names it in errors.

    Reads the archive once, as a stream. Each member's size (at least ``MEMBER_BYTES``) is taken
    from ``budget`` before it is written, so an archive expanding past the limit stops there. Regular files keep their permission bits (an executable
    stays executable) minus setuid/setgid/sticky and group/other write; ownership is not restored.
    """
    if archive.read(2) != _GZIP_MAGIC:
        raise _not_a_tar_gz(label)
    archive.seek(0)
    members = _CheckedMembers(dest, label, budget)
    try:
        # "r|gz" streams: one decompression pass, members checked just before each is written.
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            tar.extractall(dest, members=members.of(tar), **_filter_argument())
    except tarfile.ReadError as e:
        if members.seen == 0:
            raise _not_a_tar_gz(label) from e
        raise ArtifactError(f"{label} is truncated or corrupt: {e}") from e
    except (EOFError, zlib.error, tarfile.CompressionError, tarfile.StreamError) as e:
        raise ArtifactError(f"{label} is truncated or corrupt: {e}") from e
    except _FILTER_ERRORS as e:
        # Only reachable if tarfile's filter refuses something our own checks let through.
        raise ArtifactError(f"Refusing to unpack {label}: {e}") from e


def safe_target(dest: Path, name: str, label: str, noun: str = "member") -> Path:
    """The real path ``name`` (a relative, '/'-separated path) has under ``dest``.

    Raises ``ArtifactError`` if the name is absolute or resolves, through ``..`` or symlinks
    already on disk, to somewhere outside ``dest``.
    """
    dest_real = os.path.realpath(dest)
    if name.startswith("/") or os.path.isabs(name):
        raise _unsafe(label, noun, name, "has an absolute path")
    target = os.path.realpath(os.path.join(dest_real, name))
    if not _within(target, dest_real):
        raise _unsafe(label, noun, name, "would be written outside the destination directory")
    return Path(target)


class _CheckedMembers:
    """Yields an archive's members after checking each one; counts them for error messages."""

    def __init__(self, dest: Path, label: str, budget: Budget) -> None:
        self._dest = dest
        self._label = label
        self._budget = budget
        self.seen = 0

    def of(self, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        has_filter = hasattr(tarfile, "data_filter")
        for member in tar:
            self.seen += 1
            _check(member, self._dest, self._label)
            # The header's size is what tarfile writes (holes of sparse members included); an
            # empty file, a directory or a link still takes a block.
            self._budget.take(max(member.size, MEMBER_BYTES), self._label)
            if not has_filter:
                _normalize(member)
            yield member


def _check(member: tarfile.TarInfo, dest: Path, label: str) -> None:
    name = member.name
    if member.ischr() or member.isblk() or member.isfifo():
        raise _unsafe(label, "member", name, "is a device file or FIFO")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise _unsafe(label, "member", name, f"has an unsupported type ({member.type!r})")
    safe_target(dest, name, label)
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hard link"
        link = member.linkname
        if link.startswith("/") or os.path.isabs(link):
            raise _unsafe(label, "member", name, f"is a {kind} to an absolute path ({link})")
        dest_real = os.path.realpath(dest)
        # A symlink resolves from its own directory; a hard link's name is relative to the root.
        base = os.path.join(dest_real, os.path.dirname(name)) if member.issym() else dest_real
        if not _within(os.path.realpath(os.path.join(base, link)), dest_real):
            raise _unsafe(
                label, "member", name, f"is a {kind} to {link}, outside the destination directory"
            )


def _normalize(member: tarfile.TarInfo) -> None:
    """Without tarfile filters, apply what the ``data`` filter would: the same result everywhere."""
    mode = member.mode & 0o755  # drop setuid/setgid/sticky and group/other write
    if member.isreg() or member.islnk():
        if not mode & 0o100:
            mode &= ~0o111  # executable by others only if executable by the owner
        mode |= 0o600
    elif member.isdir():
        mode = 0o755
    member.mode = mode
    # tarfile chowns only when running as root; make that a no-op instead of trusting the archive.
    if hasattr(os, "getuid"):
        member.uid, member.gid = os.getuid(), os.getgid()
    member.uname = member.gname = ""


def _filter_argument() -> dict[str, Any]:
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _unsafe(label: str, noun: str, name: str, problem: str) -> ArtifactError:
    return ArtifactError(f'Refusing to unpack {label}: {noun} "{name}" {problem}.')


def _not_a_tar_gz(label: str) -> ArtifactError:
    return ArtifactError(
        f"{label} is not a gzip-compressed tar archive (SageMaker expects model.tar.gz)."
    )

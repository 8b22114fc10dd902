"""Who process-runtime containers run as: never root.

User code is the product (inference.py, a BYOC ``serve``), so it runs — but not with the server's
privileges. When the server runs as root, every container process runs as ``container_user``
(default ``nobody``) with no supplementary groups, and owns only its instance directory. The
state directory is private to the server, so instance directories and requirements layers then
live where that user can reach them: ``<tmp>/dockyard-<digest of the state dir>/``, owned by root,
mode 0711 (enter, not list). A server that is not root runs containers as itself.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The setting's values that keep containers running as root.
AS_ROOT = ("root", "0")


@dataclass(frozen=True)
class ContainerUser:
    name: str
    uid: int
    gid: int


def container_user(setting: str) -> ContainerUser | None:
    """The user containers run as; None: as the server (it is not root, or ``setting`` says root)."""
    if os.geteuid() != 0 or setting in AS_ROOT:
        return None
    try:
        entry = pwd.getpwuid(int(setting)) if setting.isdigit() else pwd.getpwnam(setting)
    except KeyError:
        if setting.isdigit():  # a bare uid needs no account: it runs with the group of the same number
            return ContainerUser(setting, int(setting), int(setting))
        raise ValueError(f"DOCKYARD_CONTAINER_USER={setting}: no such user; name an existing user or a numeric uid") from None
    return ContainerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def scratch_dir(state_dir: Path, user: ContainerUser | None) -> Path:
    """Where instance directories and layers go: the state directory, unless containers run as
    another user, who cannot enter it."""
    if user is None:
        return state_dir
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"dockyard-{digest}"
    root.mkdir(mode=0o711, exist_ok=True)
    info = root.lstat()
    # The temp dir is world-writable: refuse a directory (or link) that someone else made first.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ValueError(f"{root} exists but is not a directory of this user; remove it and start again")
    root.chmod(0o711)
    for sub in ("instances", "layers"):
        (root / sub).mkdir(mode=0o711, exist_ok=True)
    return root


def hand_over(directory: Path, user: ContainerUser) -> None:
    """Make ``user`` the owner of ``directory`` and everything below it, and its only user."""
    for parent, dirs, files in os.walk(directory):
        for name in (parent, *(os.path.join(parent, n) for n in (*dirs, *files))):
            os.chown(name, user.uid, user.gid, follow_symlinks=False)
    directory.chmod(0o700)


def blocks_managed_images(user: ContainerUser) -> Path | None:
    """The first path of this Python or of dockyard that ``user`` cannot read — a managed image's
    container runs both — or None when it can read them all."""
    import dockyard

    return unreachable(user, [Path(sys.executable).resolve(), Path(dockyard.__file__).resolve().parent])


def unreachable(user: ContainerUser, paths: list[Path]) -> Path | None:
    """The first of ``paths`` that ``user`` cannot read (every directory above it entered)."""
    for path in paths:
        for ancestor in reversed(path.parents):
            if not _allows(user, ancestor, stat.S_IXUSR):
                return ancestor
        if not _allows(user, path, stat.S_IRUSR):
            return path
    return None


def _allows(user: ContainerUser, path: Path, owner_bit: int) -> bool:
    """Whether the mode bits of ``path`` grant ``owner_bit`` (read or search) to ``user``."""
    try:
        info = path.stat()
    except OSError:
        return False
    if info.st_uid == user.uid:
        return bool(info.st_mode & owner_bit)
    if info.st_gid == user.gid:
        return bool(info.st_mode & (owner_bit >> 3))
    return bool(info.st_mode & (owner_bit >> 6))

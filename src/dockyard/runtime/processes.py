"""Operating-system plumbing for child processes: parent-death signal, process-group stop,
finding orphans an earlier server left behind, and CPU/memory readings from /proc."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import signal
import time
from pathlib import Path
from typing import BinaryIO

from dockyard.runtime.privileges import ContainerUser

_PR_SET_PDEATHSIG = 1
OWNER_VARIABLE = "DOCKYARD_OWNER"


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the server dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: orphans are swept at the next start instead
        pass


def _become(user: ContainerUser | None) -> None:
    """preexec_fn: drop to ``user`` (done here: uvloop's subprocesses take no user=), then ask for
    the parent-death signal, which a change of user would clear."""
    if user is not None:
        os.setgroups([])
        os.setgid(user.gid)
        os.setuid(user.uid)
    die_with_parent()


def open_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, created readable by the server's user only (0600): a
    container's output may hold whatever its code printed."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


async def spawn(
    command: list[str], cwd: Path, env: dict[str, str], log_path: Path, user: ContainerUser | None = None,
    pass_fds: tuple[int, ...] = (),
) -> asyncio.subprocess.Process:
    """Start a container process: its own process group (so a stop reaches its children), output
    appended to ``log_path`` (opened here: the container needs no access to it), SIGKILL when the
    server dies, and run as ``user`` with no supplementary groups when given. Of the server's
    descriptors it inherits only ``pass_fds``."""
    with open_log(log_path) as log:
        return await asyncio.create_subprocess_exec(
            *command,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=functools.partial(_become, user),
        )


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


async def stop_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the child's process group, SIGKILL it if it has not exited within ``grace``."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except asyncio.TimeoutError:
            pass
    # Also reaps grandchildren that outlived the group leader.
    signal_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        await proc.wait()


def owned_pids(owner: str) -> list[int]:
    """Processes whose environment carries ``DOCKYARD_OWNER=<owner>``."""
    marker = f"{OWNER_VARIABLE}={owner}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _cpu_seconds_and_rss(pids: list[int]) -> tuple[float, int]:
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        rss += int(fields[21]) * page
    return cpu, rss


def group_rss(pgid: int) -> int:
    """Resident bytes of a process group, all its members together."""
    return _cpu_seconds_and_rss(_group_members(pgid))[1]


async def group_usage(pgid: int, window: float = 0.2) -> tuple[float, int]:
    """CPU percent (of one core) over ``window`` seconds and resident bytes of a process group."""
    pids = _group_members(pgid)
    cpu0, _ = _cpu_seconds_and_rss(pids)
    t0 = time.monotonic()
    await asyncio.sleep(window)
    cpu1, rss = _cpu_seconds_and_rss(pids)
    return 100.0 * (cpu1 - cpu0) / (time.monotonic() - t0), rss

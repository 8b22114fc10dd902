"""Processes on this machine, read from /proc: resident memory of a process tree, and the
containers a dockyard server runs with the port each listens on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.runtime.processes import owned_pids

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str]:
    # Fields after the command name, which may itself hold spaces and parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def rss(pid: int) -> int:
    """Resident bytes of one process (0 if it is gone)."""
    try:
        return int(_stat(pid)[21]) * _PAGE
    except (OSError, IndexError):
        return 0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (shared pages count once per process)."""
    return sum(rss(member) for member in tree(pid))


@dataclass(frozen=True)
class Container:
    hostname: str
    pid: int
    port: int


def pss(pid: int) -> int:
    """Proportional set size of one process in bytes: each shared page divided among the processes
    mapping it (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(pid: int) -> int:
    """PSS of ``pid`` and its descendants: shared pages counted once in all."""
    return sum(pss(member) for member in tree(pid))


def _listening_ports() -> dict[int, int]:
    """socket inode → port of every listening TCP socket."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A":  # LISTEN
                ports[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return ports


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def containers(state_dir: Path, endpoint: str) -> dict[str, Container]:
    """hostname → the container process of ``endpoint`` run by the server with ``state_dir``.

    The process runtime marks every child with ``DOCKYARD_OWNER=<state dir>`` (a forked container
    carries its fork server's), runs each in its own process group, and sends its output to
    ``<logs>/<endpoint>/<instance>/<hostname>.log``; its port is the one it listens on.
    """
    found = {}
    listening = _listening_ports()
    for pid in owned_pids(str(state_dir.resolve())):
        try:
            if int(_stat(pid)[2]) != pid:  # not a group leader: a worker of a container
                continue
            log = Path(os.readlink(f"/proc/{pid}/fd/1"))
            ports = [listening[inode] for inode in _socket_inodes(pid) if inode in listening]
        except (OSError, IndexError):
            continue
        if log.suffix == ".log" and log.parent.parent.name == endpoint.lower() and ports:
            found[log.stem] = Container(log.stem, pid, ports[0])
    return found

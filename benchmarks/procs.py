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


def containers(state_dir: Path, endpoint: str) -> dict[str, Container]:
    """hostname → the container process of ``endpoint`` run by the server with ``state_dir``.

    The process runtime marks every child with ``DOCKYARD_OWNER=<state dir>`` and unpacks its
    model at ``<state>/instances/<endpoint>-<variant>-<id>/<hostname>/model``.
    """
    found = {}
    prefix = f"{endpoint.lower()}-"
    for pid in owned_pids(str(state_dir.resolve())):
        try:
            if int(_stat(pid)[2]) != pid:  # not a group leader: a worker of a container
                continue
            env = _environ(pid)
        except (OSError, IndexError):
            continue
        model_dir = Path(env.get("DOCKYARD_MODEL_DIR", "/"))
        instance, hostname = model_dir.parent.parent.name, model_dir.parent.name
        if instance.startswith(prefix) and instance[len(prefix):].count("-") == 1:
            found[hostname] = Container(hostname, pid, int(env["SAGEMAKER_BIND_TO_PORT"]))
    return found

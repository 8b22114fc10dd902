"""Which TCP ports a process (or a container's network namespace) listens on, from /proc.

Used for the hint of a failed port check: "it listens on 8080 instead".
"""

from __future__ import annotations

import os
from pathlib import Path

_LISTEN = "0A"


def listening_ports(tables: str, inodes: set[int] | None = None) -> list[int]:
    """Ports in LISTEN state in the text of /proc/net/tcp and tcp6; only these socket inodes if given."""
    ports = set()
    for line in tables.splitlines():
        fields = line.split()
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        if len(fields) < 10 or fields[3] != _LISTEN or not fields[9].isdigit():
            continue
        if inodes is not None and int(fields[9]) not in inodes:
            continue
        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def session_listening_ports(sid: int) -> list[int]:
    """Ports that the processes of session ``sid`` listen on (a container's process tree here)."""
    inodes: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != sid:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:["):-1]))
        except OSError:
            continue
    tables = ""
    for name in ("tcp", "tcp6"):
        try:
            tables += Path(f"/proc/{sid}/net/{name}").read_text()
        except OSError:
            continue
    return listening_ports(tables, inodes)

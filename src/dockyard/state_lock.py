"""One server per state directory: an OS lock on ``<state-dir>/lock``.

A second ``dockyard serve`` on a state dir that a running server uses would otherwise sweep the
running server's containers as "orphans". The lock is taken before anything touches the state
dir; the file says who holds it (PID and URL) so the second server can name it in one line. The
OS drops the lock when its holder dies, however it dies, so a stale lock file is simply taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO


class StateDirInUse(Exception):
    """Another live server holds the state dir; ``str(e)`` names it."""


def lock_state_dir(state_dir: Path, url: str) -> IO[str]:
    """Take the state dir for this process (held while the returned file stays open)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    # Owner-only, like the rest of the state dir.
    lock = os.fdopen(os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read()
        lock.close()
        try:
            owner = json.loads(holder)
            who = f"the dockyard server with PID {owner['pid']} at {owner['url']}"
        except (ValueError, KeyError, TypeError):
            who = "another dockyard server"
        raise StateDirInUse(
            f"dockyard serve: state dir {state_dir} is in use by {who}; stop it or pass another --state-dir."
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(json.dumps({"pid": os.getpid(), "url": url}) + "\n")
    lock.flush()
    return lock

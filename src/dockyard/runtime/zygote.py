"""A fork-server parent (a "zygote") of the process runtime: one per framework and interpreter.

It runs on a managed container's interpreter, imports dockyard's model server and the framework
once, then forks each container from itself when the server asks: a container starts with all of
that already imported, and shares those pages with its siblings (copy-on-write). Each forked
container gets what a spawned one gets: its own session and process group, its environment
(replacing the zygote's), working directory, stdout/stderr on its log, stdin on /dev/null, a
fresh random seed, and SIGKILL when its parent dies. The zygote itself runs as the containers'
user and dies with the server (parent-death signal), so the containers die with the server too.

Protocol over the SOCK_SEQPACKET socket whose descriptor is argv[2], one JSON object a packet:
  zygote → server   {"ready": true} | {"unsafe": why} | {"error": why}   once, after the imports
  server → zygote   {"id": n, "env": {...}, "cwd": path}  with the container's log attached (SCM_RIGHTS)
  zygote → server   {"id": n, "pid": p} | {"id": n, "error": why}
  zygote → server   {"exited": p, "code": c}   when a container exits (c < 0: killed by signal -c)
The zygote exits when the server closes the socket. It imports only the standard library and
``dockyard.serving``, like the containers themselves.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
MAX_MESSAGE = 1 << 20
# The zygote's process name (/proc/<pid>/comm); a container forked from it is named CONTAINER_NAME.
# Both also show the zygote's command line (ps), which a fork keeps.
ZYGOTE_NAME = b"dockyard-zygote"
CONTAINER_NAME = b"dockyard-serve"


def _prctl(option: int, value: int | bytes) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value)


def _die_with(parent: int) -> None:
    """SIGKILL when ``parent`` dies; exit now if it already has (it died before we asked)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _preload(framework_name: str) -> dict[str, Any]:
    """Import the model server and the framework; say whether containers may be forked from here."""
    from dockyard.serving import server  # noqa: F401  (aiohttp and the whole server, once)
    from dockyard.serving.frameworks import load_framework

    try:
        framework = load_framework(framework_name)
    except Exception as exc:  # noqa: BLE001 (whatever it is, the spawned container reports it in its log)
        return {"error": str(exc)}
    if not framework.fork_safe:
        return {"unsafe": f"{framework.name} is not fork-safe"}
    framework.import_preload("uvloop")
    return {"ready": True}


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.send(json.dumps(message).encode())


def _container(request: dict[str, Any], log_fd: int, zygote: int, closing: list[int]) -> NoReturn:
    """In the forked child: become the container, run the model server, never return."""
    code = 1
    try:
        for fd in closing:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        _die_with(zygote)
        _prctl(_PR_SET_NAME, CONTAINER_NAME)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # where `python -m` would have put it, as for a spawned container
        os.environ.clear()
        os.environ.update(request["env"])
        # `random` reseeds itself after a fork; numpy's global generator does not.
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()
        sys.argv = ["dockyard.serving", "serve"]
        from dockyard.serving.server import main

        code = main(["serve"])
    except BaseException:  # noqa: BLE001 (a forked child must never return into the zygote's loop)
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _fork(conn: socket.socket, wake: tuple[int, int]) -> bool:
    """Serve one request from the server; False when the server has closed the socket."""
    data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 1)
    if not data:
        return False
    request = json.loads(data)
    if len(fds) != 1:
        _send(conn, {"id": request["id"], "error": "no log file descriptor came with the request"})
        return True
    sys.stdout.flush()
    sys.stderr.flush()
    zygote = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        _send(conn, {"id": request["id"], "error": f"fork failed: {exc}"})
        os.close(fds[0])
        return True
    if pid == 0:
        _container(request, fds[0], zygote, [conn.detach(), *wake])
    os.close(fds[0])
    _send(conn, {"id": request["id"], "pid": pid})
    return True


def _reap(conn: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(conn, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def main(argv: list[str]) -> int:
    """``python -m dockyard.runtime.zygote <framework> <socket fd> <server pid>``."""
    framework_name, fd, server = argv
    # The runtime set the parent-death signal before exec; check that the server did not die first.
    if os.getppid() != int(server):
        return 1
    _prctl(_PR_SET_NAME, ZYGOTE_NAME)
    conn = socket.socket(fileno=int(fd))
    status = _preload(framework_name)
    _send(conn, status)
    if "ready" not in status:
        return 0
    wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake[1])
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poller.register(wake[0], select.POLLIN)
    while True:
        for ready, _ in poller.poll():
            if ready == wake[0]:
                while True:
                    try:
                        os.read(wake[0], 512)
                    except BlockingIOError:
                        break
                _reap(conn)
            elif not _fork(conn, wake):
                return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BrokenPipeError, ConnectionResetError):  # the server is gone
        sys.exit(0)

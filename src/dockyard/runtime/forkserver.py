"""The process runtime's fork server: zygotes (``zygote.py``) by interpreter and framework, and the
containers forked from them.

A zygote starts on first use and is kept until the runtime closes. It reports each container's
pid and, as their parent, each exit code, so a forked container looks to the runtime like a
spawned one (``ForkedProcess``: ``pid``, ``returncode``, ``wait()``). Whenever forking is not
possible — the framework is not fork-safe, the zygote did not start or died mid-request — ``fork``
returns None and the runtime spawns the container as before: never a stuck endpoint. A zygote that
dies takes its containers with it (their parent-death signal); they are then reported dead and the
reconciler replaces them, and the next container starts a new zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.runtime import processes
from dockyard.runtime.privileges import ContainerUser

log = logging.getLogger("dockyard.runtime.forkserver")

# (interpreter, framework): one zygote each, as a requirements layer has its own packages.
Key = tuple[str, str]


class ForkedProcess:
    """A container forked by a zygote, as the runtime sees it (the subset of asyncio's Process
    that ``processes.stop_group`` and the runtime use)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class Zygote:
    """One running zygote: its process, its socket, the requests in flight and its containers."""

    def __init__(self, proc: asyncio.subprocess.Process, conn: socket.socket) -> None:
        self.proc = proc
        self._conn = conn
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[ForkedProcess | str]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @property
    def alive(self) -> bool:
        return not self._reader.done()

    async def fork(self, env: dict[str, str], cwd: Path, log_path: Path) -> ForkedProcess | str:
        """A container forked with ``env`` in ``cwd``, or why it could not be."""
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[ForkedProcess | str] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = json.dumps({"id": request_id, "env": env, "cwd": str(cwd)}).encode()
        with processes.open_log(log_path) as log_file:
            try:
                socket.send_fds(self._conn, [message], [log_file.fileno()])
            except OSError as exc:  # the zygote is gone, or its socket is full (it is stuck)
                self._pending.pop(request_id, None)
                return f"could not reach the fork server: {exc}"
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # the start was abandoned: the container must not run unowned
            future.add_done_callback(_kill_abandoned)
            raise

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self._conn, 65536)
                if not data:
                    break
                self._dispatch(json.loads(data))
        except (OSError, ValueError) as exc:
            log.warning("fork server %d: %s", self.proc.pid, exc)
        finally:
            self._conn.close()
            if not self.ready.done():
                self.ready.set_result({"error": "the fork server exited while importing"})
            for future in self._pending.values():
                if not future.done():
                    future.set_result("the fork server exited")
            # Its containers got SIGKILL with it (their parent-death signal).
            for child in self._children.values():
                child.exited(-signal.SIGKILL)
            await self.proc.wait()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            child = self._children.pop(message["exited"], None)
            if child is not None:
                child.exited(message["code"])
        elif "id" in message:
            future = self._pending.pop(message["id"])
            if "pid" in message:
                # Registered here, not by the waiting caller: its exit may be the very next message.
                child = self._children[message["pid"]] = ForkedProcess(message["pid"])
                future.set_result(child)
            else:
                future.set_result(message["error"])
        elif not self.ready.done():
            self.ready.set_result(message)

    async def close(self, grace: float) -> None:
        # Closing the socket ends the zygote; the stop makes sure.
        self._conn.close()
        self._reader.cancel()
        await processes.stop_group(self.proc, grace)


class ForkServer:
    """The zygotes of one process runtime."""

    def __init__(self, log_dir: Path, user: ContainerUser | None, environment: Callable[[dict[str, str]], dict[str, str]]) -> None:
        self._log_dir = log_dir
        self._user = user
        # A zygote's own environment, from the managed image's extra variables (no container's).
        self._environment = environment
        self._zygotes: dict[Key, asyncio.Task[Zygote | None]] = {}
        # Keys that are never forked: the framework is not fork-safe, or its zygote cannot start.
        self._spawn_only: set[Key] = set()

    async def fork(
        self, python: str, framework: str, extra_env: dict[str, str], env: dict[str, str], cwd: Path,
        log_path: Path, startup_timeout: float,
    ) -> ForkedProcess | None:
        """A container forked from the zygote of ``python`` and ``framework``; None: spawn it."""
        key = (python, framework)
        if key in self._spawn_only:
            return None
        task = self._zygotes.get(key)
        if task is None or (task.done() and _running(task) is None):  # first use, or it died: (re)start
            task = self._zygotes[key] = asyncio.create_task(self._start(key, extra_env, startup_timeout))
        await asyncio.wait([task])
        zygote = _running(task)
        if zygote is None:
            return None
        forked = await zygote.fork(env, cwd, log_path)
        if isinstance(forked, str):
            log.warning("forking a %s container failed (%s); spawning it instead", framework, forked)
            return None
        return forked

    async def _start(self, key: Key, extra_env: dict[str, str], timeout: float) -> Zygote | None:
        python, framework = key
        log_path = self._log_dir / f"{framework}-{hashlib.sha256(python.encode()).hexdigest()[:8]}.log"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        command = [python, "-m", "dockyard.runtime.zygote", framework, str(theirs.fileno()), str(os.getpid())]
        try:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            # In its log directory: `-m` puts the working directory on sys.path, and nothing is imported from there.
            proc = await processes.spawn(command, self._log_dir, self._environment(extra_env), log_path, self._user,
                                         pass_fds=(theirs.fileno(),))
        except OSError as exc:
            log.warning("the %s fork server could not start (%s); spawning containers", framework, exc)
            ours.close()
            self._spawn_only.add(key)
            return None
        finally:
            theirs.close()
        zygote = Zygote(proc, ours)
        try:
            status = await asyncio.wait_for(asyncio.shield(zygote.ready), timeout)
        except asyncio.TimeoutError:
            status = {"error": f"not ready within {timeout:g} s"}
        if "ready" in status:
            log.info("fork server for %s on %s ready (pid %d)", framework, python, proc.pid)
            return zygote
        self._spawn_only.add(key)
        why = status.get("unsafe") or f"{status.get('error')}; see {log_path}"
        log.log(logging.INFO if "unsafe" in status else logging.WARNING,
                "%s containers are spawned, not forked: %s", framework, why)
        await zygote.close(0)
        return None

    async def close(self, grace: float) -> None:
        tasks = list(self._zygotes.values())
        self._zygotes.clear()
        for task in tasks:
            task.cancel()  # a zygote still importing is not waited for: it dies with the server
        if tasks:
            await asyncio.wait(tasks)
        zygotes = [z for z in map(_running, tasks) if z is not None]
        await asyncio.gather(*(z.close(grace) for z in zygotes))


def _kill_abandoned(future: asyncio.Future[ForkedProcess | str]) -> None:
    forked = future.result()
    if isinstance(forked, ForkedProcess):
        # The pid, not its group: the child may not have called setsid yet. Until the zygote reaps
        # it, the pid cannot name another process; its own children die with it (parent-death signal).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(forked.pid, signal.SIGKILL)


def _running(task: asyncio.Task[Zygote | None]) -> Zygote | None:
    """The live zygote a finished start task gave, if any."""
    if task.cancelled() or task.exception() is not None:
        return None
    zygote = task.result()
    return zygote if zygote is not None and zygote.alive else None

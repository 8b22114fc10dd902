"""Forked worker processes: SAGEMAKER_MODEL_SERVER_WORKERS of them (one included).

The master loads the model once and, before it opens any socket or starts its event loop, forks a
*zygote*; the zygote forks the workers, which inherit the loaded model copy-on-write. Whenever the
master retires a worker (its prediction ran past the timeout, or it died) the zygote forks a new
one. Forking from the zygote rather than the master keeps the master's listening socket and client
connections out of the workers: a worker holding a copy of a client socket would keep that
connection open after the master closed it.

Each worker owns one end of a Unix socket pair and the master the other. The master's aiohttp
server holds every client connection and hands each request to whichever worker is free, so one
slow prediction never blocks requests behind it. Requests and replies cross as length-prefixed
bytes; a streamed reply's body follows its head as length-prefixed chunks, each sent the moment
the worker's iterator yields it, up to an end mark (the worker stays busy until then). On Linux
every child sets PR_SET_PDEATHSIG=SIGKILL, so none outlives its parent even when
the master is SIGKILLed; elsewhere a worker exits when it reads EOF from the master.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from dockyard.serving.codecs import TEXT
from dockyard.serving.errors import StartupError
from dockyard.serving.pipeline import Pipeline
from dockyard.serving.runners import Answer, StreamFailed

log = logging.getLogger("dockyard.serving")

_REQUEST = struct.Struct("!IIII")  # lengths of Content-Type, Accept, custom attributes, body
_REPLY = struct.Struct("!HII")  # status, length of Content-Type, length of body
_PID = struct.Struct("!i")
# A streamed reply: the body length of its head is STREAMED, then chunks, each with its length,
# up to a length of END (finished) or FAILED (the iterator raised).
_CHUNK = struct.Struct("!I")
STREAMED, END, FAILED = 0xFFFFFFFF, 0, 0xFFFFFFFF
_PR_SET_PDEATHSIG = 1
_READ_LIMIT = 1 << 20  # the master's read buffer per worker: fewer pauses on 6 MiB replies
_WORKER_DIED = (
    500,
    b"the worker process exited while handling the request; see the server log",
    TEXT,
)


def _encode(value: str) -> bytes:
    # aiohttp decodes header bytes with surrogateescape; this restores them exactly.
    return value.encode("utf-8", "surrogateescape")


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _exit(code: int) -> NoReturn:
    # os._exit skips the master's atexit handlers, inherited with the fork; flush what user code
    # printed first.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _zygote(control: socket.socket, pipeline: Pipeline, master_pid: int) -> NoReturn:
    _die_with_parent(master_pid)
    # Ctrl-C signals the whole process group; the master alone decides when children stop, so
    # in-flight predictions can finish. Workers inherit these dispositions.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps exited workers
    zygote_pid = os.getpid()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1, 1)
        except OSError:
            break
        if not message or not fds:  # the master closed the control socket: stop
            break
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # user code may wait for subprocesses
            _worker(socket.socket(fileno=fds[0]), pipeline, zygote_pid)
        os.close(fds[0])
        control.sendall(_PID.pack(pid))
    _exit(0)


def _worker(sock: socket.socket, pipeline: Pipeline, parent_pid: int) -> NoReturn:
    _die_with_parent(parent_pid)
    stream = sock.makefile("rb")
    code = 0
    try:
        while len(header := stream.read(_REQUEST.size)) == _REQUEST.size:
            type_length, accept_length, attributes_length, body_length = _REQUEST.unpack(header)
            content_type = _decode(stream.read(type_length))
            accept = _decode(stream.read(accept_length))
            attributes = _decode(stream.read(attributes_length))
            status, body, reply_type = pipeline(
                stream.read(body_length), content_type, accept, attributes
            )
            encoded_type = _encode(reply_type)
            length = len(body) if isinstance(body, bytes) else STREAMED
            sock.sendall(b"".join((_REPLY.pack(status, len(encoded_type), length), encoded_type)))
            if isinstance(body, bytes):
                sock.sendall(body)
            else:
                _send_chunks(sock, body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the master is gone
    except BaseException:
        log.exception("worker process %d failed", os.getpid())
        code = 1
    _exit(code)


def _send_chunks(sock: socket.socket, chunks: Iterator[bytes]) -> None:
    """Each chunk as the iterator yields it, then the end mark (or the failure mark)."""
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            sock.sendall(_CHUNK.pack(END))
            return
        except Exception:
            log.exception("the streamed reply failed")
            sock.sendall(_CHUNK.pack(FAILED))
            return
        if chunk:  # an empty one would read as the end mark
            sock.sendall(_CHUNK.pack(len(chunk)) + chunk)


@dataclass(slots=True, eq=False)
class _Worker:
    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class ProcessPool:
    """``size`` forked workers; a free worker takes the next request."""

    def __init__(self, pipeline: Pipeline, size: int) -> None:
        self._pipeline = pipeline
        self._size = size
        self._control: socket.socket | None = None
        self._zygote_pid = 0
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: set[_Worker] = set()
        self._replacing: set[asyncio.Task[None]] = set()
        self._closing = False
        # False once a worker cannot be replaced: /ping then reports the server unhealthy.
        self.healthy = True

    def prepare(self) -> None:
        """Fork the zygote; call before any socket, thread or event loop exists."""
        if not hasattr(os, "fork"):
            raise StartupError("SAGEMAKER_MODEL_SERVER_WORKERS > 1 needs os.fork (Linux or macOS)")
        ours, theirs = socket.socketpair()
        master_pid = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write buffered output a second time
        pid = os.fork()
        if pid == 0:
            ours.close()
            _zygote(theirs, self._pipeline, master_pid)
        theirs.close()
        self._control, self._zygote_pid = ours, pid

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self._size):
            await self._add_worker()

    def _fork_worker(self) -> tuple[int, socket.socket]:
        assert self._control is not None, "prepare() first"
        ours, theirs = socket.socketpair()
        try:
            # Blocking, on the event loop: the zygote answers as soon as it has forked.
            socket.send_fds(self._control, [b"F"], [theirs.fileno()])
            answer = self._control.recv(_PID.size, socket.MSG_WAITALL)
        except OSError:
            answer = b""
        finally:
            theirs.close()
        if len(answer) != _PID.size:
            ours.close()
            raise RuntimeError("the worker zygote process has exited")
        return _PID.unpack(answer)[0], ours

    async def _add_worker(self) -> None:
        pid, sock = self._fork_worker()
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_READ_LIMIT)
        worker = _Worker(pid, reader, writer)
        self._workers.add(worker)
        assert self._idle is not None
        self._idle.put_nowait(worker)

    async def _replace(self) -> None:
        try:
            await self._add_worker()
        except (OSError, RuntimeError) as exc:
            self.healthy = False
            log.error("cannot start a new worker process: %s", exc)

    def _retire(self, worker: _Worker, alive: bool) -> None:
        if alive:
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.writer.close()
        self._workers.discard(worker)
        if not self._closing:
            task = asyncio.get_running_loop().create_task(self._replace())
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _acquire(self) -> _Worker:
        assert self._idle is not None, "start() first"
        while True:
            worker = await self._idle.get()
            if not worker.reader.at_eof():
                return worker
            log.warning("worker process %d exited while idle; starting a new one", worker.pid)
            self._retire(worker, alive=False)

    async def submit(self, body: bytes, content_type: str, accept: str, attributes: str) -> Answer:
        """Send the request to the next free worker and wait for its reply."""
        fields = (_encode(content_type), _encode(accept), _encode(attributes))
        header = _REQUEST.pack(*map(len, fields), len(body))
        message = b"".join((header, *fields, body))
        worker = await self._acquire()
        try:
            worker.writer.write(message)
            status, type_length, body_length = _REPLY.unpack(
                await worker.reader.readexactly(_REPLY.size)
            )
            reply_type = _decode(await worker.reader.readexactly(type_length))
            if body_length == STREAMED:
                # The worker stays busy until the stream ends: the stream gives it back.
                return status, _WorkerStream(self, worker), reply_type
            reply_body = await worker.reader.readexactly(body_length)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.error("worker process %d exited while handling a request", worker.pid)
            self._retire(worker, alive=False)
            return _WORKER_DIED
        except BaseException:
            # Cancelled mid-request (past SAGEMAKER_MODEL_SERVER_TIMEOUT, or stopping): the worker
            # is busy with an answer nobody will read, so it is killed and replaced.
            self._retire(worker, alive=True)
            raise
        self.release(worker)
        return status, reply_body, reply_type

    def release(self, worker: _Worker) -> None:
        """``worker`` finished its request: next one."""
        assert self._idle is not None
        self._idle.put_nowait(worker)

    async def close(self) -> None:
        """Close every worker's socket and the zygote's; the kernel then kills the workers."""
        self._closing = True
        for task in list(self._replacing):
            task.cancel()
        for worker in self._workers:
            worker.writer.close()
        self._workers.clear()
        if self._control is not None:
            self._control.close()
            self._control = None
            # The zygote exits as soon as it reads EOF; reap it.
            os.waitpid(self._zygote_pid, 0)


class _WorkerStream:
    """The chunks of a worker's streamed reply, read from its socket as they come."""

    def __init__(self, pool: ProcessPool, worker: _Worker) -> None:
        self._pool, self._worker = pool, worker
        self._done = False

    def __aiter__(self) -> _WorkerStream:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        reader = self._worker.reader
        try:
            (length,) = _CHUNK.unpack(await reader.readexactly(_CHUNK.size))
            if length not in (END, FAILED):
                return await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._done = True
            log.error("worker process %d exited while streaming a reply", self._worker.pid)
            self._pool._retire(self._worker, alive=False)
            raise StreamFailed("the worker process exited while streaming; see the server log") from None
        self._done = True
        self._pool.release(self._worker)
        if length == FAILED:
            raise StreamFailed("the streamed reply failed; see the server log")
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self._done:
            # Given up mid-stream (timed out, or the client left): the worker is still producing
            # an answer nobody will read, so it is killed and replaced.
            self._done = True
            self._pool._retire(self._worker, alive=True)

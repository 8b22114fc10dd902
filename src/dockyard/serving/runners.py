"""Where predictions run: in a pool of forked worker processes, or on one inference thread.

Either way the aiohttp server on the event loop owns every connection and only awaits the reply,
so /ping answers while a prediction is running. ``make_runner`` picks
``dockyard.serving.process_pool.ProcessPool`` with SAGEMAKER_MODEL_SERVER_WORKERS processes
whenever the framework survives a fork, even for one worker: a prediction that runs past
SAGEMAKER_MODEL_SERVER_TIMEOUT is stopped only by killing its process. Frameworks that hang in
forked children (XGBoost, TensorFlow) get ``ThreadRunner``, which cannot stop a stuck prediction
but moves on to a fresh thread, so the next request is served.

A streamed reply (the handlers returned an iterator) comes back as a ``ChunkStream``: the worker
keeps running the iterator and hands over each chunk as it is produced. Closing the stream before
its end abandons the worker as a timed-out request does.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Protocol

from dockyard.serving import codecs
from dockyard.serving.pipeline import Pipeline
from dockyard.serving.settings import Settings

log = logging.getLogger("dockyard.serving")


class StreamFailed(Exception):
    """A streamed reply broke off: its iterator raised (logged where it ran) or its worker died."""


class ChunkStream(Protocol):
    """The chunks of a streamed reply, as the worker produces them; ``aclose()`` it however the
    sending ends. Iterating raises ``StreamFailed`` when the reply breaks off."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


# What a runner answers: the reply, its body whole or a ChunkStream.
Answer = tuple[int, bytes | ChunkStream, str]


class Runner(Protocol):
    """Runs ``Pipeline`` calls away from the event loop."""

    healthy: bool

    def prepare(self) -> None:
        """Set up what must exist before the event loop and any socket (called once)."""

    async def start(self) -> None:
        """Start the workers (called once, on the event loop)."""

    def submit(
        self, body: bytes, content_type: str, accept: str, attributes: str
    ) -> Awaitable[Answer]:
        """Run one request; cancelling the awaitable abandons it."""

    async def close(self) -> None:
        """Stop the workers; requests still running are abandoned."""


class ThreadRunner:
    """One daemon inference thread at a time, fed by a queue.

    A daemon thread rather than a ThreadPoolExecutor: a prediction stuck past the timeout must not
    keep the process alive after SIGTERM. A thread cannot be killed, so when the request it is
    running is abandoned (timed out) the thread is retired — it exits once its prediction returns,
    if ever — and a new thread takes the queue over: at most one thread serves requests.
    """

    healthy = True

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._jobs: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        # The future the serving thread is computing, and that thread's retirement flag.
        self._lock = threading.Lock()
        self._running: asyncio.Future[Answer] | None = None
        self._retired = threading.Event()

    def prepare(self) -> None:
        """Nothing to prepare: the thread shares the process."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start_thread()

    def _start_thread(self) -> None:
        self._retired = threading.Event()
        thread = threading.Thread(
            target=self._work, args=(self._retired,), name="dockyard-inference", daemon=True
        )
        thread.start()
        self._thread = thread

    def submit(
        self, body: bytes, content_type: str, accept: str, attributes: str
    ) -> asyncio.Future[Answer]:
        assert self._loop is not None, "start() first"
        future: asyncio.Future[Answer] = self._loop.create_future()
        future.add_done_callback(self._abandoned)
        self._jobs.put((future, body, content_type, accept, attributes))
        return future

    def _abandoned(self, future: asyncio.Future[Answer]) -> None:
        """On the event loop: a request was cancelled; if it is the one running, move on."""
        if future.cancelled():
            self.abandon(future)

    def abandon(self, future: asyncio.Future[Answer]) -> None:
        """On the event loop: the request of ``future`` is given up; if it runs, move on."""
        with self._lock:
            if self._running is not future:
                return  # still queued: the thread skips it
            self._running = None
            self._retired.set()
        log.error("a prediction was given up while it ran (timed out, or its client left); "
                  "serving the next ones on a new thread")
        self._start_thread()

    def _work(self, retired: threading.Event) -> None:
        loop = self._loop
        assert loop is not None, "start() first"
        while not retired.is_set() and (job := self._jobs.get()) is not None:
            future, body, content_type, accept, attributes = job
            with self._lock:
                if future.cancelled():  # its request timed out while it waited
                    continue
                self._running = future
            try:
                status, reply, reply_type = self._pipeline(body, content_type, accept, attributes)
            except KeyboardInterrupt:
                # Raised by the handler itself (signals reach only the main thread): it fails this
                # request, as SystemExit does, instead of ending the thread with its requests waiting.
                log.exception("the request's handler raised KeyboardInterrupt")
                status, reply, reply_type = 500, b"KeyboardInterrupt: ", codecs.TEXT
            try:
                if isinstance(reply, bytes):
                    loop.call_soon_threadsafe(_resolve, future, (status, reply, reply_type))
                else:
                    stream = _ThreadStream(self, future)
                    loop.call_soon_threadsafe(_resolve, future, (status, stream, reply_type))
                    stream.feed(reply, retired)
            except RuntimeError:  # the loop closed: the server stopped while this one ran
                return
            with self._lock:
                if retired.is_set():
                    return
                self._running = None

    async def close(self) -> None:
        self._jobs.put(None)

    def join(self, timeout: float) -> None:
        """Wait (blocking) up to ``timeout`` for the serving thread to end after ``close``."""
        self._thread.join(timeout)


def _resolve(future: asyncio.Future[Answer], answer: Answer) -> None:
    if not future.done():
        future.set_result(answer)


_END = object()
# Chunks handed to the event loop and not yet taken by the sender: beyond this the inference thread
# waits, so a generator faster than its client cannot fill the server's memory.
_IN_FLIGHT = 64


class _ThreadStream:
    """A streamed reply of the inference thread: chunks cross to the event loop by a queue."""

    def __init__(self, runner: ThreadRunner, future: asyncio.Future[Answer]) -> None:
        assert runner._loop is not None
        self._runner, self._future, self._loop = runner, future, runner._loop
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._room = threading.Semaphore(_IN_FLIGHT)
        self._done = False

    def feed(self, chunks: Iterator[bytes], retired: threading.Event) -> None:
        """On the inference thread: run ``chunks`` to its end, or until the request is given up."""
        put = self._queue.put_nowait
        try:
            for chunk in chunks:
                self._room.acquire()
                if retired.is_set():
                    return
                self._loop.call_soon_threadsafe(put, chunk)
        except (Exception, KeyboardInterrupt) as exc:  # KeyboardInterrupt: as in ``ThreadRunner._work``
            log.exception("the streamed reply failed")
            self._loop.call_soon_threadsafe(put, StreamFailed(f"{type(exc).__name__}: {exc}"))
            return
        self._loop.call_soon_threadsafe(put, _END)

    def __aiter__(self) -> _ThreadStream:
        return self

    async def __anext__(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, bytes):
            self._room.release()
            return item
        self._done = True
        if isinstance(item, StreamFailed):
            raise item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._runner.abandon(self._future)
            self._room.release(_IN_FLIGHT)  # a thread waiting for room wakes, sees it is retired


def make_runner(settings: Settings, pipeline: Pipeline, fork_safe: bool) -> Runner:
    """Forked worker processes when the framework allows, else one inference thread."""
    if not fork_safe:
        return ThreadRunner(pipeline)
    from dockyard.serving.process_pool import ProcessPool

    return ProcessPool(pipeline, settings.workers)

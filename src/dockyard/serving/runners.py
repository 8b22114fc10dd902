"""Where predictions run: on one inference thread, or in a pool of forked worker processes.

Either way the aiohttp server on the event loop owns every connection and only awaits the reply,
so /ping answers while a prediction is running. ``make_runner`` picks by
SAGEMAKER_MODEL_SERVER_WORKERS: 1 → ``ThreadRunner`` (no IPC hop, fastest start), more →
``dockyard.serving.process_pool.ProcessPool``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable
from typing import Protocol

from dockyard.serving.pipeline import Pipeline, Reply
from dockyard.serving.settings import Settings


class Runner(Protocol):
    """Runs ``Pipeline`` calls away from the event loop."""

    healthy: bool

    def prepare(self) -> None:
        """Set up what must exist before the event loop and any socket (called once)."""

    async def start(self) -> None:
        """Start the workers (called once, on the event loop)."""

    def submit(
        self, body: bytes, content_type: str, accept: str, attributes: str
    ) -> Awaitable[Reply]:
        """Run one request; cancelling the awaitable abandons it."""

    async def close(self) -> None:
        """Stop the workers; requests still running are abandoned."""


class ThreadRunner:
    """One daemon inference thread fed by a queue.

    A daemon thread rather than a ThreadPoolExecutor: a prediction stuck past the timeout must not
    keep the process alive after SIGTERM.
    """

    healthy = True

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._jobs: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="dockyard-inference", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def prepare(self) -> None:
        """Nothing to prepare: the thread shares the process."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def submit(
        self, body: bytes, content_type: str, accept: str, attributes: str
    ) -> asyncio.Future[Reply]:
        assert self._loop is not None, "start() first"
        future: asyncio.Future[Reply] = self._loop.create_future()
        self._jobs.put((future, body, content_type, accept, attributes))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, body, content_type, accept, attributes = job
            if future.cancelled():  # its request timed out while it waited
                continue
            reply = self._pipeline(body, content_type, accept, attributes)
            try:
                self._loop.call_soon_threadsafe(_resolve, future, reply)
            except RuntimeError:  # the loop closed: the server stopped while this one ran
                return

    async def close(self) -> None:
        self._jobs.put(None)


def _resolve(future: asyncio.Future[Reply], reply: Reply) -> None:
    if not future.done():
        future.set_result(reply)


def make_runner(settings: Settings, pipeline: Pipeline) -> Runner:
    """The runner for SAGEMAKER_MODEL_SERVER_WORKERS."""
    if settings.workers == 1:
        return ThreadRunner(pipeline)
    from dockyard.serving.process_pool import ProcessPool

    return ProcessPool(pipeline, settings.workers)

"""ThreadRunner (frameworks that hang when forked): a prediction stuck past the timeout is left
behind and the next request is served on a new thread."""

from __future__ import annotations

import asyncio
import threading

from dockyard.serving.runners import ThreadRunner


class StuckOnce:
    """A pipeline whose first call blocks until released; later calls answer at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self, body: bytes, content_type: str, accept: str, attributes: str):
        self.threads.append(threading.current_thread().name + str(threading.get_ident()))
        if body == b"stuck":
            self.release.wait(20)
        return 200, body.upper(), "text/plain"


def test_a_stuck_prediction_is_abandoned_for_a_new_thread():
    pipeline = StuckOnce()

    async def scenario():
        runner = ThreadRunner(pipeline)
        await runner.start()
        try:
            await asyncio.wait_for(runner.submit(b"stuck", "", "", ""), 0.2)
        except asyncio.TimeoutError:
            pass
        else:
            raise AssertionError("the stuck prediction answered")
        reply = await asyncio.wait_for(runner.submit(b"next", "", "", ""), 10)
        # Released, the abandoned thread exits instead of competing for the queue.
        pipeline.release.set()
        later = [await asyncio.wait_for(runner.submit(b"x", "", "", ""), 10) for _ in range(3)]
        await runner.close()
        return reply, later

    reply, later = asyncio.run(scenario())
    assert reply == (200, b"NEXT", "text/plain")
    assert later == [(200, b"X", "text/plain")] * 3
    stuck_thread, *others = pipeline.threads
    assert others and all(thread != stuck_thread for thread in others)
    assert len(set(others)) == 1

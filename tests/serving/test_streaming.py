"""Streamed replies of the managed model server: a predict_fn that yields sends each item as a
chunk as soon as it is produced (process pool and inference thread alike); a failure before the
first item is an error reply, after it the chunked body is cut; a stream past
SAGEMAKER_MODEL_SERVER_TIMEOUT is cut and its worker replaced."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dockyard.serving.runners import StreamFailed, ThreadRunner

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")

# predict_fn yields the request's tokens. With "wait_dir", token k is produced only once the client
# has created go-k there (after reading token k-1): a chunk held back anywhere stalls the stream.
STREAMING_CODE = """
import json
import os
import time
from pathlib import Path


def model_fn(model_dir):
    return "placeholder"


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(request, model):
    for k, token in enumerate(request["tokens"]):
        if k and "wait_dir" in request and not signalled(Path(request["wait_dir"]) / f"go-{k}"):
            yield "never-signalled"
            return
        if request.get("raise_at") == k:
            raise ValueError(f"broken at {k}")
        if request.get("exit_at") == k:
            os._exit(3)
        if request.get("hang_at") == k:
            time.sleep(3600)
        yield token if k % 2 else token.encode()  # str and bytes alike


def signalled(path):
    for _ in range(400):  # a fail-safe only: the client signals as soon as it reads
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def output_fn(prediction, accept):
    return prediction, "text/plain"
"""
TOKENS = ["It", " was", " a", " dark", " and", " stormy", " night"]


@pytest.fixture(scope="module")
def streaming_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("streaming-model")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(STREAMING_CODE)
    return model_dir


def post(server, request: dict) -> requests.Response:
    return requests.post(server.url + "/invocations", json=request, stream=True, timeout=30)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_each_item_is_sent_before_the_next_is_produced(serve, streaming_model_dir, tmp_path, workers):
    server = serve(streaming_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS=workers)
    with post(server, {"tokens": TOKENS, "wait_dir": str(tmp_path)}) as resp:
        assert resp.status_code == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["Content-Type"] == "text/plain"
        received = []
        for chunk in resp.iter_content(chunk_size=None):
            received.append(chunk.decode())
            (tmp_path / f"go-{len(received)}").touch()
    assert received == TOKENS


def test_a_failure_before_the_first_item_is_an_error_reply(serve, streaming_model_dir):
    server = serve(streaming_model_dir)
    resp = post(server, {"tokens": TOKENS, "raise_at": 0})
    assert (resp.status_code, resp.text) == (500, "ValueError: broken at 0")


@pytest.mark.parametrize("failure", [{"raise_at": 2}, {"exit_at": 2}])
def test_a_failure_mid_stream_cuts_the_body_and_the_server_goes_on(serve, streaming_model_dir, failure):
    server = serve(streaming_model_dir)  # one worker: it must be back (or replaced) for the next
    with post(server, {"tokens": TOKENS, **failure}) as resp:
        assert resp.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(resp.iter_content(chunk_size=None))
    with post(server, {"tokens": TOKENS}) as resp:
        assert resp.content.decode() == "".join(TOKENS)


def test_a_stream_past_the_timeout_is_cut_and_its_worker_replaced(serve, streaming_model_dir):
    server = serve(streaming_model_dir, SAGEMAKER_MODEL_SERVER_TIMEOUT="2")
    with post(server, {"tokens": TOKENS, "hang_at": 1}) as resp, pytest.raises(
        requests.exceptions.ChunkedEncodingError
    ):
        b"".join(resp.iter_content(chunk_size=None))
    with post(server, {"tokens": TOKENS}) as resp:
        assert resp.content.decode() == "".join(TOKENS)
    assert "ran past SAGEMAKER_MODEL_SERVER_TIMEOUT=2 s" in server.log()


class Streaming:
    """A pipeline that streams its body's bytes one by one; b"!" fails mid-stream."""

    def __call__(self, body: bytes, content_type: str, accept: str, attributes: str):
        def chunks() -> Iterator[bytes]:
            for byte in body:
                if byte == ord("!"):
                    raise RuntimeError("broken")
                yield bytes([byte])

        return 200, chunks(), "text/plain"


def test_thread_runner_streams_and_reports_a_broken_stream():
    async def scenario():
        runner = ThreadRunner(Streaming())
        await runner.start()
        status, whole, _ = await runner.submit(b"abc", "", "", "")
        parts = [chunk async for chunk in whole]
        _, broken, _ = await runner.submit(b"ab!c", "", "", "")
        before = []
        with pytest.raises(StreamFailed, match="RuntimeError: broken"):
            async for chunk in broken:
                before.append(chunk)
        # Given up half way, the stream's thread is retired; the next request is still served.
        _, abandoned, _ = await runner.submit(b"xyz", "", "", "")
        await abandoned.__anext__()
        await abandoned.aclose()
        _, after, _ = await runner.submit(b"ok", "", "", "")
        rest = b"".join([chunk async for chunk in after])
        await runner.close()
        return status, parts, before, rest

    status, parts, before, rest = asyncio.run(scenario())
    assert (status, parts, before, rest) == (200, [b"a", b"b", b"c"], [b"a", b"b"], b"ok")



TRANSFORM_CODE = """
def model_fn(model_dir):
    return "placeholder"


def transform_fn(model, body, content_type, accept):
    return (word + " " for word in body.split()), "text/plain"
"""


def test_a_transform_fn_generator_streams_too(serve, tmp_path):
    model_dir = tmp_path / "transform-model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(TRANSFORM_CODE)
    server = serve(model_dir)
    resp = requests.post(server.url + "/invocations", data="one two three", stream=True, timeout=30,
                         headers={"Content-Type": "text/csv"})
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert resp.content == b"one two three "


def test_thread_runner_holds_a_generator_faster_than_its_client():
    produced = []

    class Endless:
        def __call__(self, body: bytes, content_type: str, accept: str, attributes: str):
            def chunks() -> Iterator[bytes]:
                while True:
                    produced.append(1)
                    yield b"x"

            return 200, chunks(), "text/plain"

    async def scenario():
        runner = ThreadRunner(Endless())
        await runner.start()
        _, stream, _ = await runner.submit(b"", "", "", "")
        await stream.__anext__()
        # Nobody reads: the thread stops once the chunks in flight fill up.
        while len(produced) < 65:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        held = len(produced)
        await stream.aclose()
        await runner.close()
        return held

    assert asyncio.run(scenario()) <= 66  # 64 in flight, the one read, the one waiting for room

"""SAGEMAKER_MODEL_SERVER_WORKERS > 1: forked workers, no head-of-line blocking, replacement."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading

import pytest
import requests

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")


def pids_serving(server, requests: int = 4) -> set[int]:
    return {server.post(json.dumps({})).json()["pid"] for _ in range(requests)}


def test_a_slow_prediction_does_not_block_the_next_request(serve, blocking_model_dir, gate):
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    finished = []

    def call(body: str) -> None:
        response = server.post(body)
        finished.append((response.json()["name"], response.status_code))

    slow = threading.Thread(target=call, args=(gate.request(name="slow"),))
    slow.start()
    gate.wait_started()
    call(json.dumps({"name": "fast"}))
    gate.release()
    slow.join(20)
    assert finished == [("fast", 200), ("slow", 200)]


def test_workers_are_forked_processes_sharing_the_load(serve, blocking_model_dir):
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="3")
    pids = pids_serving(server, 6)
    assert len(pids) == 3 and server.process.pid not in pids


def test_large_bodies_cross_the_pool(serve, blocking_model_dir):
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    payload = "0123456789" * 500_000  # 5 MB each way, far beyond a socket buffer
    for _ in range(3):
        response = server.post(json.dumps({"echo": payload}))
        assert response.status_code == 200
        assert response.json()["echo"] == payload


@pytest.mark.parametrize("workers", [1, 2])
def test_timed_out_worker_is_killed_and_replaced(
    serve, blocking_model_dir, gate, proc_helpers, workers
):
    # One worker is the default: a stuck prediction must not take the endpoint down for good.
    alive, wait_until = proc_helpers
    server = serve(
        blocking_model_dir,
        SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
        SAGEMAKER_MODEL_SERVER_TIMEOUT="0.5",
    )
    response = server.post(gate.request())
    assert response.status_code == 500
    assert "did not finish within 0.5 s (SAGEMAKER_MODEL_SERVER_TIMEOUT)" in response.text
    stuck = gate.wait_started()
    wait_until(lambda: not alive(stuck), what=f"worker {stuck} to be killed")
    pids = pids_serving(server)
    assert len(pids) == workers and stuck not in pids and server.process.pid not in pids


def test_crashed_worker_fails_its_request_and_is_replaced(serve, blocking_model_dir):
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    before = pids_serving(server)
    response = server.post(json.dumps({"crash": True}))
    assert response.status_code == 500
    assert "worker process exited" in response.text
    after = pids_serving(server)
    assert len(after) == 2 and len(after & before) == 1


def test_workers_die_with_a_killed_server(serve, blocking_model_dir, gate, proc_helpers):
    alive, wait_until = proc_helpers
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    workers = pids_serving(server)

    # One worker is busy in a prediction, so it will not notice its socket closing: only
    # PR_SET_PDEATHSIG stops it before the prediction's own 20 s deadline.
    def post_until_the_server_dies() -> None:
        with contextlib.suppress(requests.ConnectionError):
            server.post(gate.request())

    threading.Thread(target=post_until_the_server_dies, daemon=True).start()
    assert gate.wait_started() in workers
    server.process.kill()  # SIGKILL: the server gets no chance to clean up
    server.process.wait()
    wait_until(lambda: not any(map(alive, workers)), timeout=5, what="the workers to die")


def test_sigterm_exits_0(serve, blocking_model_dir, proc_helpers):
    alive, wait_until = proc_helpers
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    workers = pids_serving(server)
    assert server.stop(signal.SIGTERM) == 0
    wait_until(lambda: not any(map(alive, workers)), what="the workers to exit")

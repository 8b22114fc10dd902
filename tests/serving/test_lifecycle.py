"""One worker (inference thread): /ping during a slow prediction, timeouts, graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import threading

import requests


def test_sigterm_when_idle_exits_0(serve, blocking_model_dir):
    server = serve(blocking_model_dir)
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.log()


def test_sigterm_while_the_model_loads_exits_0(spawn, tmp_path, gate):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(
        "import os, time\n"
        "def model_fn(model_dir):\n"
        f"    open({str(gate.path) + '.started'!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(20)\n"
    )
    process = spawn(tmp_path)
    gate.wait_started()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def test_sigterm_lets_the_request_in_flight_finish(serve, blocking_model_dir, gate, proc_helpers):
    _, wait_until = proc_helpers
    server = serve(blocking_model_dir)
    replies = []
    request = threading.Thread(target=lambda: replies.append(server.post(gate.request())))
    request.start()
    gate.wait_started()
    server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in server.log(), what="the server to begin stopping")
    gate.release()
    request.join(20)
    assert [r.status_code for r in replies] == [200]
    assert server.process.wait(20) == 0


def test_ping_answers_during_a_slow_prediction(serve, blocking_model_dir, gate):
    server = serve(blocking_model_dir)
    replies = []
    request = threading.Thread(target=lambda: replies.append(server.post(gate.request())))
    request.start()
    gate.wait_started()
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
    assert replies == []  # the prediction is still running
    gate.release()
    request.join(20)
    assert [r.status_code for r in replies] == [200]


def test_prediction_past_the_timeout_is_500(serve, blocking_model_dir, gate):
    server = serve(blocking_model_dir, SAGEMAKER_MODEL_SERVER_TIMEOUT="0.5")
    response = server.post(gate.request())
    assert response.status_code == 500
    assert response.text == (
        "the prediction did not finish within 0.5 s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
    )
    gate.release()  # the inference thread cannot be killed; once free it serves again
    assert server.post(json.dumps({"name": "next"})).json()["name"] == "next"

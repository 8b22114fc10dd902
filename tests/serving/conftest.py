"""Start ``python -m dockyard.serving serve`` as a real child process on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests

START_DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(model_dir: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "DOCKYARD_"))}
    env.update(
        DOCKYARD_BIND_HOST="127.0.0.1",
        SAGEMAKER_BIND_TO_PORT=str(port),
        DOCKYARD_MODEL_DIR=str(model_dir),
    )
    env.update(extra)
    return env


def command() -> list[str]:
    return [sys.executable, "-m", "dockyard.serving", "serve"]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def post(
        self,
        body: bytes | str,
        content_type: str | None = "application/json",
        accept: str | None = None,
        **headers: str,
    ) -> requests.Response:
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        return requests.post(self.url + "/invocations", data=body, headers=headers, timeout=30)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def launch(model_dir: Path, log_dir: Path, **env: str) -> Server:
    """Start a server and wait until /ping answers 200; fail with its log if it exits first."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(), env=server_env(model_dir, port, env), stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + "/ping", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.02)
    server.stop(signal.SIGKILL)
    pytest.fail(f"server did not answer /ping within {START_DEADLINE} s:\n{server.log()}")


def run_until_exit(model_dir: Path, timeout: float = 30, **env: str) -> subprocess.CompletedProcess:
    """Run a server expected to fail at start; its output is captured as text."""
    return subprocess.run(
        command(),
        env=server_env(model_dir, free_port(), env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def launch_server():
    """``launch_server(model_dir, log_dir, **env)``, for module-scoped servers."""
    return launch


@pytest.fixture
def spawn() -> Iterator:
    """``spawn(model_dir, **env)`` starts a server process without waiting for it; killed after."""
    processes: list[subprocess.Popen] = []

    def start(model_dir: Path, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(command(), env=server_env(model_dir, free_port(), env))
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def run_failing():
    """``run_failing(model_dir, **env)`` runs a server that should exit: a CompletedProcess."""
    return run_until_exit


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """``serve(model_dir, **env)`` starts a server that is stopped after the test."""
    servers: list[Server] = []

    def start(model_dir: Path, **env: str) -> Server:
        server = launch(model_dir, tmp_path, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)


@dataclass(frozen=True)
class Iris:
    model: object
    X: np.ndarray
    model_dir: Path


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iris:
    """A logistic regression trained on scikit-learn's bundled iris data, saved as model.joblib."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    model_dir = tmp_path_factory.mktemp("iris-model")
    joblib.dump(model, model_dir / "model.joblib")
    return Iris(model, X, model_dir)


# A user module whose model is a placeholder (no scikit-learn import, so the server starts fast)
# and whose predict_fn can block on a gate file, crash, echo, or report which process ran it.
BLOCKING_CODE = """
import json
import json
import os
import time
from pathlib import Path


def model_fn(model_dir):
    return "placeholder"


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(request, model):
    if "block" in request:
        gate = Path(request["block"])
        gate.with_suffix(".started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 20
        while not gate.with_suffix(".release").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    if request.get("crash"):
        os._exit(3)
    return {"pid": os.getpid(), "name": request.get("name"), "echo": request.get("echo")}


def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


@pytest.fixture(scope="session")
def blocking_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("blocking-model")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(BLOCKING_CODE)
    return model_dir


class Gate:
    """A predict_fn given ``{"block": str(gate.path)}`` waits until ``release()``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, **fields: object) -> str:
        return json.dumps({"block": str(self.path), **fields})

    def wait_started(self, timeout: float = 20) -> int:
        """Wait until the prediction is running; return the pid of the process running it."""
        started = self.path.with_suffix(".started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if started.exists() and started.read_text():
                return int(started.read_text())
            time.sleep(0.005)
        pytest.fail("the blocking prediction did not start")

    def release(self) -> None:
        self.path.with_suffix(".release").touch()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    gate = Gate(tmp_path / "gate")
    yield gate
    gate.release()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for a reaper, counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def proc_helpers():
    """``(alive, wait_until)`` for tests that watch processes come and go."""
    return alive, wait_until

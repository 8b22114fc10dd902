"""The peers: MLServer and KServe, each installed into its own virtualenv and serving the same
``model.joblib`` on a free loopback port.

Versions are pinned so figures stay comparable from run to run; scikit-learn is pinned to the
version dockyard's environment has, so all three load the same file with the same library.
Each peer runs its defaults (one worker) with its per-request logging turned off, as dockyard's
is: MLServer ``debug: false`` (no access log); KServe ``--enable_latency_logging false
--configure_logging false`` (no latency or access lines).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from benchmarks.fixtures import ROW
from benchmarks.load import Target
from dockyard.runtime.ports import free_port

MLSERVER_VERSION = "1.7.1"
KSERVE_VERSION = "0.21.0"
READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class PeerSpec:
    key: str
    label: str
    requirements: tuple[str, ...]


def specs() -> tuple[PeerSpec, ...]:
    sklearn = f"scikit-learn=={version('scikit-learn')}"
    return (
        # MLServer 1.7's inference workers call asyncio.get_event_loop(), which uvloop 0.22+ refuses.
        PeerSpec("mlserver", f"MLServer {MLSERVER_VERSION}",
                 (f"mlserver=={MLSERVER_VERSION}", f"mlserver-sklearn=={MLSERVER_VERSION}", sklearn, "uvloop==0.21.0")),
        PeerSpec("kserve", f"KServe {KSERVE_VERSION}", (f"kserve=={KSERVE_VERSION}", sklearn)),
    )


class PeerError(RuntimeError):
    """A peer could not be installed or started; the run goes on without it."""


def ensure_venv(cache: Path, spec: PeerSpec) -> Path:
    """The Python of a virtualenv holding ``spec.requirements``, made once per requirement set."""
    key = hashlib.sha256("\n".join((sys.version, *spec.requirements)).encode()).hexdigest()[:12]
    venv = cache / "venvs" / f"{spec.key}-{key}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    if done.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / f"{venv.name}.pip.log"
    with log.open("w") as out:
        for command in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", *spec.requirements],
        ):
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                tail = log.read_text(errors="replace")[-1500:]
                raise PeerError(f"installing {spec.label} failed ({' '.join(command[:4])} …):\n{tail}")
    done.write_text("\n".join(spec.requirements) + "\n")
    return python


@dataclass
class RunningPeer:
    spec: PeerSpec
    proc: subprocess.Popen
    target: Target
    ready_seconds: float
    log_path: Path

    def stop(self) -> None:
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group the peer leads; SIGKILL whatever is left after ``grace`` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass


def _reason(log_path: Path) -> str:
    """The last error line of a peer's log, else its last line."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")


def _await_ready(proc: subprocess.Popen, url: str, log_path: Path, started: float) -> float:
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise PeerError(f"exited with code {proc.returncode}: {_reason(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    stop_group(proc)
    raise PeerError(f"not ready at {url} within {READY_TIMEOUT:g} s")


def _launch(spec: PeerSpec, command: list[str], log_path: Path, cwd: Path, ready_url: str, target: Target) -> RunningPeer:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "DOCKYARD_"))}
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    ready = _await_ready(proc, ready_url, log_path, started)
    return RunningPeer(spec, proc, target, ready, log_path)


def _mlserver_repository(repo: Path, models: dict[str, Path], **settings: object) -> str:
    """An MLServer model repository at ``repo`` serving ``models`` (name → a directory holding
    its ``model.joblib``) on a free port; its base URL."""
    port = free_port()
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "settings.json").write_text(json.dumps({
        "debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        **settings,
    }))
    for name, model_dir in models.items():
        (repo / name).mkdir(exist_ok=True)
        (repo / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(model_dir / "model.joblib")},
        }))
    return f"http://127.0.0.1:{port}"


def start_mlserver(spec: PeerSpec, python: Path, model_dir: Path, root: Path) -> RunningPeer:
    """``mlserver start`` on a model repository holding the iris model (V2 protocol)."""
    repo = root / "mlserver"
    base = _mlserver_repository(repo, {"iris": model_dir})
    target = Target(spec.label, f"{base}/v2/models/iris/infer", infer_body(), (("Content-Type", "application/json"),))
    command = [str(python.parent / "mlserver"), "start", str(repo)]
    return _launch(spec, command, root / "mlserver.log", repo, f"{base}/v2/models/iris/ready", target)


def start_mlserver_repository(spec: PeerSpec, python: Path, models: dict[str, Path], root: Path) -> tuple[RunningPeer, str]:
    """``mlserver start`` on a model repository of ``models``, none loaded at start: each is
    loaded by the repository API (``POST /v2/repository/models/{name}/load``). Also its base URL."""
    repo = root / "mlserver-repository"
    base = _mlserver_repository(repo, models, load_models_at_startup=False)
    target = Target(spec.label, f"{base}/v2/models/{next(iter(models))}/infer", infer_body(),
                    (("Content-Type", "application/json"),))
    command = [str(python.parent / "mlserver"), "start", str(repo)]
    return _launch(spec, command, root / "mlserver-repository.log", repo, f"{base}/v2/health/ready", target), base


def infer_body() -> bytes:
    """One iris row in the V2 protocol."""
    return json.dumps({"inputs": [{"name": "input-0", "shape": [1, len(ROW)], "datatype": "FP64", "data": ROW}]}).encode()


def start_kserve(spec: PeerSpec, python: Path, model_dir: Path, root: Path) -> RunningPeer:
    """KServe's ModelServer with the sklearn predictor (V1 protocol)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"instances": [ROW]}).encode()
    target = Target(spec.label, f"{base}/v1/models/iris:predict", body, (("Content-Type", "application/json"),))
    command = [
        str(python), str(Path(__file__).with_name("peer_kserve.py")), "--model_dir", str(model_dir),
        "--model_name", "iris", "--http_port", str(port), "--grpc_port", str(free_port()),
        "--enable_latency_logging", "false", "--configure_logging", "false",
    ]
    return _launch(spec, command, root / "kserve.log", root, f"{base}/v1/models/iris", target)


STARTERS = {"mlserver": start_mlserver, "kserve": start_kserve}

"""Run a real ``dockyard serve`` in a child process on a free loopback port, for the demo
(and the test suite): temporary state unless a state dir is given, stopped on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dockyard.runtime import privileges
from dockyard.runtime.ports import free_port
from dockyard.settings import Settings


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 30.0, context: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dockyard serve exited with code {proc.returncode} before it was up")
        try:
            with urllib.request.urlopen(f"{url}/_dockyard/health", timeout=1, context=context):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockyard serve did not come up at {url} within {timeout:g} s") from None
            time.sleep(0.05)


def start_server(state_dir: Path, port: int, log_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", "--port", str(port), "--state-dir", str(state_dir), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def stop_server(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def embedded_server(state_dir: Path | None = None) -> Iterator[str]:
    """Yield the URL of a running dockyard server; stop it (and its containers) afterwards."""
    with tempfile.TemporaryDirectory(prefix="dockyard-") as tmp:
        state = state_dir or Path(tmp) / "state"
        port = free_port()
        proc = start_server(state, port, Path(tmp) / "server.log", env=_loopback_container_user())
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, proc)
        except RuntimeError as exc:
            stop_server(proc)
            log = (Path(tmp) / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}\n{log}") from None
        try:
            yield url
        finally:
            stop_server(proc)


def _loopback_container_user() -> dict[str, str]:
    """The embedded server listens on loopback only. When it runs as root and the configured
    container user cannot read this Python (installed under /root, say), its containers run as
    root instead, and it says so: the first run works. ``dockyard serve`` itself never falls back."""
    setting = os.environ.get("DOCKYARD_CONTAINER_USER") or Settings.container_user
    try:
        user = privileges.container_user(setting)
    except ValueError:
        return {}  # the server names the bad setting itself
    if user is None:
        return {}
    blocked = privileges.blocks_managed_images(user)
    if blocked is None:
        return {}
    print(f"note: containers run as root: user {user.name} cannot read {blocked} "
          "(set DOCKYARD_CONTAINER_USER, or install Python where that user can read it)", file=sys.stderr)
    return {"DOCKYARD_CONTAINER_USER": "root"}

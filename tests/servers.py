"""A real ``dockyard serve`` in a child process, for tests: its URL, state dir, log, clients."""

from __future__ import annotations

import tempfile
from pathlib import Path

import boto3
from botocore.config import Config

from dockyard.cli.embedded import start_server, stop_server, wait_until_up
from dockyard.runtime.ports import free_port


class Server:
    """A running dockyard server: its URL, state dir, log, and boto3 clients."""

    def __init__(self, state_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None,
                 allow_paths: tuple[Path, ...] = (Path(tempfile.gettempdir()),)) -> None:
        self.state_dir, self.log_path, self.extra_env = state_dir, log_path, extra_env or {}
        # Test model data lives in pytest's temporary directories, outside the default local roots.
        self.allow_paths = allow_paths
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> "Server":
        flags = [arg for path in self.allow_paths for arg in ("--allow-path", str(path))]
        self.proc = start_server(self.state_dir, self.port, self.log_path, *flags, env=self.extra_env)
        wait_until_up(self.url, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)

    def client(self, service: str, **config: object):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(**config) if config else None,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

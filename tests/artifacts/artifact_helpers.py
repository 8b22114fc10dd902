"""Helpers for the artifact tests: archives built in the test, and the test HTTP server's state."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest


def make_tar_gz(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    """A gzip'd tar of regular files, e.g. {"model.joblib": b"...", "code/inference.py": b"..."}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = (modes or {}).get(name, 0o644)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz_with(*members: tarfile.TarInfo, files: dict[str, bytes] | None = None) -> bytes:
    """A gzip'd tar of some regular files followed by hand-made members (links, devices, ...)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (files or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isreg() else None)
    return buffer.getvalue()


def data_source(uri: str, data_type: str, compression: str) -> dict[str, Any]:
    """A container whose model data is a ``ModelDataSource.S3DataSource``."""
    s3 = {"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression}
    return {"ModelDataSource": {"S3DataSource": s3}}


def run_in_threads(work: Callable[[int], None], count: int) -> list[BaseException]:
    """Run ``work(0) .. work(count - 1)`` at the same time; return what they raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as e:  # noqa: BLE001 - handed back to the test to assert on
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by its relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class RequestLog:
    """Requests the S3 server answered, from werkzeug's access log (the server runs in-process)."""

    caplog: pytest.LogCaptureFixture

    def count(self, method: str, bucket: str, key: str) -> int:
        line = f'"{method} /{bucket}/{key} HTTP/1.1"'
        return sum(line in r.getMessage() for r in self.caplog.records if r.name == "werkzeug")


@dataclass
class Served:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # Pre-signed S3 URLs, for one, answer HEAD with an error: GET is all they are signed for.
    allow_head: bool = True


@dataclass
class HttpFiles:
    """What the test HTTP server serves, and how often each path was fetched."""

    base_url: str
    files: dict[str, Served] = field(default_factory=dict)
    gets: dict[str, int] = field(default_factory=dict)
    heads: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, path: str, body: bytes, allow_head: bool = True, **headers: str) -> str:
        """Serve ``body`` at ``path`` with extra headers (``ETag="..."``, ``Last_Modified=...``)."""
        self.files[path] = Served(
            body, {k.replace("_", "-"): v for k, v in headers.items()}, allow_head
        )
        return self.base_url + path


class CountingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        state: HttpFiles = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            counts = state.gets if with_body else state.heads
            counts[self.path] = counts.get(self.path, 0) + 1
        served = state.files.get(self.path)
        if served is None:
            self.send_error(404, "Not Found")
            return
        if not (with_body or served.allow_head):
            self.send_error(403, "Forbidden")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(served.body)))
        for name, value in served.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(served.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output is for failures."""

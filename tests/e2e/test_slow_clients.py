"""Issue 12 §3, slow clients, against a real ``dockyard serve``: hundreds of connections that
send half a request and then nothing are closed, never starve a boto3 client, and never fill the
log; a client that goes away mid-request is not an error traceback."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from servers import Server

from dockyard.cli.embedded import stop_server, wait_until_up
from dockyard.runtime.ports import free_port

SLOW = 300
PARTIAL = b"POST /endpoints/x/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"


def open_slow(port: int, n: int) -> list[socket.socket]:
    """``n`` loopback connections that each send half a request's headers, then nothing."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(PARTIAL)
        s.setblocking(False)
        socks.append(s)
    return socks


def wait_closed(socks: list[socket.socket], at_least: int, within: float = 60.0) -> int:
    """How many of ``socks`` the server has closed, waiting (up to ``within`` s) for ``at_least``."""
    selector = selectors.DefaultSelector()
    for s in socks:
        selector.register(s, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + within
    while closed < at_least and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            try:
                data = key.fileobj.recv(4096)
            except ConnectionError:
                data = b""
            if not data:  # the server closed it (it never answers half a request)
                selector.unregister(key.fileobj)
                closed += 1
    selector.close()
    return closed


@pytest.fixture
def slow_socks() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def test_slow_connections_are_closed_after_the_header_timeout_and_starve_no_one(
        tmp_path: Path, slow_socks: list[socket.socket]) -> None:
    srv = Server(tmp_path / "state", tmp_path / "server.log",
                 {"DOCKYARD_HEADER_TIMEOUT": "2", "DOCKYARD_BODY_TIMEOUT": "2"}).start()
    try:
        slow_socks += open_slow(srv.port, SLOW)
        # And a few that send whole headers, then a tenth of the body they announced.
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(PARTIAL + b"Content-Length: 100\r\n\r\n1,2,3,4,5,")
            s.setblocking(False)
            slow_socks.append(s)
        sm = srv.client("sagemaker", retries={"max_attempts": 1, "mode": "standard"})
        assert sm.list_endpoints()["Endpoints"] == []  # served while the slow ones hang on
        assert wait_closed(slow_socks, SLOW + 10) == SLOW + 10
        assert sm.list_models()["Models"] == []
    finally:
        srv.stop()
    log = srv.log()
    assert "Traceback" not in log
    # One line with a count, not one per connection.
    assert log.count("that were too slow to send their request") == 1


def test_at_the_connection_cap_waiting_connections_make_room_and_files_never_run_out(
        tmp_path: Path, slow_socks: list[socket.socket]) -> None:
    # 256 descriptors: the server allows half of them as connections (128); 300 slow clients
    # would exhaust them without the cap.
    limited = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
               "sys.argv[0] = 'dockyard'; runpy.run_module('dockyard', run_name='__main__')")
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", limited, "serve", "--port", str(port), "--state-dir", str(tmp_path / "state")],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "DOCKYARD_HEADER_TIMEOUT": "120"},  # closures below come from the cap alone
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc)
        slow_socks += open_slow(port, SLOW)
        sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        assert sm.list_endpoints()["Endpoints"] == []
        assert wait_closed(slow_socks, SLOW - 128) >= SLOW - 128
    finally:
        stop_server(proc)
    text = log_path.read_text(errors="replace")
    assert "Too many open files" not in text and "Traceback" not in text
    assert text.count("too slow to send their request") == 1


def test_a_client_that_goes_away_mid_body_is_not_a_traceback(tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", tmp_path / "server.log").start()
    try:
        for head in (
            b"POST /endpoints/x/invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n",
            (b"POST / HTTP/1.1\r\nHost: a\r\nX-Amz-Target: SageMaker.ListModels\r\n"
             b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n"),
        ):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(head + b"1,2,3,4,5,")
        sm = srv.client("sagemaker", retries={"max_attempts": 1, "mode": "standard"})
        assert sm.list_models()["Models"] == []
    finally:
        srv.stop()
    assert "Traceback" not in srv.log()

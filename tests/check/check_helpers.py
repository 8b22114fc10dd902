"""Running ``dockyard check`` as a user does, and small stdlib HTTP servers written as container
directories (an executable ``serve``), each breaking one rule of the container contract on purpose."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from dockyard.cli.main import main


def run_check(*args: str) -> tuple[int, dict]:
    """``dockyard check --json ARGS``: the exit code and the report."""
    result = CliRunner().invoke(main, ["check", "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}

SERVER = '''\
#!{python}
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

PORT = {port} or int(os.environ["SAGEMAKER_BIND_TO_PORT"])
PING = {ping}
PING_DELAY = {ping_delay}
# Seconds the first /ping takes, as a server that loads its model on it (AWS's sklearn BYOC sample).
FIRST_PING_DELAY = [{first_ping_delay}]
INVOKE_DELAY = {invoke_delay}
NEGOTIATES = {negotiates}
MULTI_MODEL = {multi_model}
MODELS = {{}}


class Handler(BaseHTTPRequestHandler):
    # A one-thread server would be held by a single keep-alive connection: it closes each one.
    protocol_version = "{protocol}"

    def do_GET(self):
        if self.path == "/ping" and PING:
            time.sleep(PING_DELAY + (FIRST_PING_DELAY.pop() if FIRST_PING_DELAY else 0))
            self.reply(200, b"")
        elif MULTI_MODEL and self.path == "/models":
            self.reply(200, json.dumps({{"models": [{{"modelName": n, "modelUrl": u}} for n, u in MODELS.items()]}}).encode())
        elif MULTI_MODEL and self.path.startswith("/models/") and self.path[8:] in MODELS:
            self.reply(200, json.dumps({{"modelName": self.path[8:], "modelUrl": MODELS[self.path[8:]]}}).encode())
        else:
            self.reply(404, b"not found")

    def do_DELETE(self):
        name = self.path[len("/models/"):]
        if MULTI_MODEL and self.path.startswith("/models/") and MODELS.pop(name, None) is not None:
            self.reply(200, b"")
        else:
            self.reply(404, b"not loaded")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if MULTI_MODEL and self.path == "/models":
            request = json.loads(body)
            if not os.path.isdir(request["url"]):
                self.reply(400, b"no such model directory")
                return
            MODELS[request["model_name"]] = request["url"]
            self.reply(200, b"")
            return
        if MULTI_MODEL and not (self.path.startswith("/models/") and self.path[8:-7] in MODELS):
            self.reply(404, b"model not loaded")
            return
        time.sleep(INVOKE_DELAY)
        if NEGOTIATES and self.headers.get("Content-Type") != "text/csv":
            self.reply(415, b"csv only")
        elif NEGOTIATES and self.headers.get("Accept", "*/*") not in ("*/*", "text/csv"):
            self.reply(406, b"csv only")
        else:
            self.reply(200, body)

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


assert sys.argv[1:] == ["serve"], sys.argv
server = {server_class}(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
if {ignores_sigterm}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
'''


def container_dir(
    directory: Path,
    *,
    port: int | None = None,
    ping: bool = True,
    ping_delay: float = 0.0,
    first_ping_delay: float = 0.0,
    invoke_delay: float = 0.0,
    negotiates: bool = True,
    threaded: bool = True,
    ignores_sigterm: bool = False,
    multi_model: bool = False,
) -> Path:
    """Write ``directory/serve``; by default it honours the contract, each keyword breaks one rule.

    ``port``: listen there instead of on SAGEMAKER_BIND_TO_PORT. ``multi_model``: serve the
    multi-model API (``/models``) and invocations by model only.
    """
    directory.mkdir(parents=True, exist_ok=True)
    serve = directory / "serve"
    serve.write_text(SERVER.format(
        python=sys.executable, port=port or 0, ping=ping, ping_delay=ping_delay,
        first_ping_delay=first_ping_delay, invoke_delay=invoke_delay,
        negotiates=negotiates, server_class="ThreadingHTTPServer" if threaded else "HTTPServer",
        protocol="HTTP/1.1" if threaded else "HTTP/1.0",
        ignores_sigterm=ignores_sigterm, multi_model=multi_model,
    ))
    serve.chmod(0o755)
    return directory

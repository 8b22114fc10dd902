"""A bring-your-own multi-model container: SageMaker's multi-model container contract with
Python's standard library alone (no model server, no dockyard code).

The platform loads and unloads models through it (``POST /models``, ``DELETE /models/{name}``),
lists them (``GET /models``, ``GET /models/{name}``) and invokes one
(``POST /models/{name}/invoke``, or ``POST /invocations`` with the
``X-Amzn-SageMaker-Target-Model`` header). A model is a directory holding ``name.txt``; invoking
it answers its name, the names of every model loaded at that moment, and how many loads the
container has refused for memory so far.

``MODEL_SLOTS`` (an environment variable) stands for this container's memory: with N slots, a
load beyond N models answers 507, which tells the platform to unload the least recently used
model and try again.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SLOTS = int(os.environ.get("MODEL_SLOTS") or 0)  # 0: no limit
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"

lock = threading.Lock()
loaded: dict[str, dict[str, str]] = {}  # model name -> {"url": directory, "label": name.txt}
refused = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, message: str) -> None:
        self.answer(status, {"code": status, "message": message})

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def parts(self) -> list[str]:
        return [p for p in urlsplit(self.path).path.split("/") if p]

    def do_GET(self) -> None:
        parts = self.parts()
        if parts == ["ping"]:
            self.answer(200, {"status": "healthy"})
        elif parts == ["models"]:
            query = parse_qs(urlsplit(self.path).query)
            start = int(query.get("next_page_token", ["0"])[0] or 0)
            limit = int(query.get("limit", ["100"])[0])
            with lock:
                names = sorted(loaded)
                page = {"models": [{"modelName": n, "modelUrl": loaded[n]["url"]}
                                   for n in names[start:start + limit]]}
            if start + limit < len(names):
                page["nextPageToken"] = str(start + limit)
            self.answer(200, page)
        elif len(parts) == 2 and parts[0] == "models":
            with lock:
                model = loaded.get(parts[1])
            if model is None:
                self.error(404, f"Model {parts[1]} is not loaded.")
            else:
                self.answer(200, [{"modelName": parts[1], "modelUrl": model["url"]}])
        else:
            self.error(404, "not found")

    def do_DELETE(self) -> None:
        parts = self.parts()
        if len(parts) != 2 or parts[0] != "models":
            return self.error(404, "not found")
        with lock:
            model = loaded.pop(parts[1], None)
        if model is None:
            return self.error(404, f"Model {parts[1]} is not loaded.")
        self.answer(200, {"status": f"Model {parts[1]} unloaded."})

    def do_POST(self) -> None:
        parts, body = self.parts(), self.body()
        if parts == ["models"]:
            return self.load(body)
        if parts == ["invocations"]:
            return self.invoke(self.headers.get(TARGET_MODEL, ""), body)
        if len(parts) == 3 and parts[0] == "models" and parts[2] == "invoke":
            return self.invoke(parts[1], body)
        self.error(404, "not found")

    def load(self, body: bytes) -> None:
        global refused
        try:
            spec = json.loads(body)
            name, url = spec["model_name"], spec["url"]
        except (ValueError, KeyError, TypeError):
            return self.error(400, "the body must be a JSON object with model_name and url")
        try:
            with open(os.path.join(url, "name.txt")) as f:
                label = f.read().strip()
        except OSError as exc:
            return self.error(404, f"Model {name} cannot be read from {url}: {exc}")
        with lock:
            if name in loaded:
                return self.error(409, f"Model {name} is already loaded.")
            if SLOTS and len(loaded) >= SLOTS:
                refused += 1
                return self.error(507, f"Not enough memory to load model {name}.")
            loaded[name] = {"url": url, "label": label}
        self.answer(200, {"status": f"Model {name} loaded."})

    def invoke(self, name: str, body: bytes) -> None:
        with lock:
            model = loaded.get(name)
            labels = sorted(m["label"] for m in loaded.values())
            refusals = refused
        if model is None:
            return self.error(404, f"Model {name} is not loaded.")
        self.answer(200, {"model": model["label"], "loaded": labels, "refused": refusals, "bytes": len(body)})

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


if __name__ == "__main__":
    # PID 1 in a container ignores SIGTERM (the platform's stop signal) unless it handles it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or 8080)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()

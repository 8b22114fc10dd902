"""The invocation path behind other HTTP servers: a measurement, not a dockyard feature.

Issue 18 asks whether aiohttp's server side is what limits the gateway, and to weigh a
high-performance server for the invocation path by CPU per invocation. Each frontend here does
the per-request work of dockyard's runtime API — read the body, ``Upstream.post`` it to the
container, relay the body with its Content-Type and the variant and request-id headers — behind
a different server, each on uvloop in one process:

- ``aiohttp``: ``web.Application`` with one route, as ``dockyard serve`` runs;
- ``aiohttp low-level``: aiohttp's ``web.Server`` with one handler (no application, router or
  middlewares);
- ``uvicorn``: uvicorn's httptools protocol, a plain ASGI app;
- ``granian``: granian (Rust, hyper) through its RSGI interface, one worker.

``python -m benchmarks.frontends [--quick]`` deploys the noop model on a dockyard server, starts
each frontend (those installed) on a free port pointed at that container, and loads them side by
side with the suite's plan — wrk at concurrency 1 and 8, then ``benchmarks.pyclient`` (as boto3
sends) at 1 — next to the container direct and dockyard's whole gateway on the same container;
it prints a Markdown table. Routing, metrics and validation are left out on every frontend alike,
so the differences between them are the servers'; the gateway's row shows what dockyard's own
work adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import fixtures, load, procs
from benchmarks.markdown import table
from benchmarks.measure import Plan, side_by_side
from benchmarks.spread import paired, ratios, summary
from benchmarks.stack import DockyardStack
from dockyard.gateway.upstream import Upstream
from dockyard.runtime.ports import free_port

FRONTENDS = ("aiohttp", "aiohttp low-level", "uvicorn", "granian")
_UPSTREAM = ("127.0.0.1", int(os.environ.get("FRONTEND_CONTAINER_PORT", "0")))
_upstream = Upstream(60.0)


async def _invoke(body: bytes, content_type: str) -> tuple[bytes, list[tuple[str, str]]]:
    """What every frontend does per request: the container's answer and the headers to return."""
    resp = await _upstream.post(*_UPSTREAM, "/invocations", [("Content-Type", content_type)], body)
    try:
        out = await resp.read()
        headers = [("Content-Type", resp.headers.get("Content-Type", "application/octet-stream"))]
    finally:
        resp.release()
    headers += [
        ("x-Amzn-Invoked-Production-Variant", "AllTraffic"),
        ("x-amzn-RequestId", str(uuid.UUID(int=random.getrandbits(128), version=4))),
    ]
    return out, headers


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    content_type = next((v.decode() for k, v in scope["headers"] if k == b"content-type"), "application/json")
    out, headers = await _invoke(body, content_type)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in headers]})
    await send({"type": "http.response.body", "body": out})


async def rsgi_app(scope: Any, protocol: Any) -> None:
    body = await protocol()
    out, headers = await _invoke(body, scope.headers.get("content-type", "application/json"))
    protocol.response_bytes(200, headers, out)


def serve(frontend: str, port: int) -> None:
    """Run one frontend in this process (the container's port comes from the environment)."""
    if frontend.startswith("aiohttp"):
        from aiohttp import web

        from dockyard.server import event_loop

        async def handler(request: web.BaseRequest) -> web.Response:
            out, headers = await _invoke(await request.read(), request.headers.get("Content-Type", "application/json"))
            return web.Response(body=out, headers=headers)

        if frontend == "aiohttp":
            app = web.Application()
            app.router.add_post("/endpoints/{name}/invocations", handler)
            web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=event_loop())
        else:
            async def low_level() -> None:
                runner = web.ServerRunner(web.Server(handler, access_log=None))
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                await asyncio.Event().wait()

            event_loop().run_until_complete(low_level())
    elif frontend == "uvicorn":
        import uvicorn

        uvicorn.run("benchmarks.frontends:asgi_app", host="127.0.0.1", port=port, http="httptools", loop="uvloop",
                    access_log=False, log_level="warning")
    else:
        from granian import Granian

        Granian("benchmarks.frontends:rsgi_app", address="127.0.0.1", port=port, interface="rsgi", workers=1,
                runtime_threads=1, runtime_mode="st", loop="uvloop", log_enabled=False).serve()


def _installed(frontend: str) -> bool:
    try:
        __import__(frontend.split()[0])
    except ImportError:
        return False
    return True


def _start(frontend: str, container_port: int) -> tuple[subprocess.Popen, load.Target]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.frontends", "--serve", frontend, str(port)],
        env={**os.environ, "FRONTEND_CONTAINER_PORT": str(container_port)},
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{port}/endpoints/bench-noop/invocations"
    deadline = time.monotonic() + 30
    while True:
        try:
            load.check(load.Target(frontend, url, fixtures.SAGEMAKER_BODY, fixtures.JSON_HEADERS))
            break
        except load.LoadError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    # granian serves from a worker process: its CPU is the one to count.
    worker = procs.tree(proc.pid)[-1]
    return proc, load.Target(frontend, url, fixtures.SAGEMAKER_BODY, fixtures.JSON_HEADERS, worker)


def measure(plan: Plan) -> str:
    with tempfile.TemporaryDirectory(prefix="dockyard-frontends-") as tmp, DockyardStack(Path(tmp)) as stack:
        stack.deploy("bench-noop", [fixtures.tarball(fixtures.noop_model_dir(Path(tmp) / "models"))])
        (container,) = stack.containers("bench-noop").values()
        running = []
        try:
            for frontend in filter(_installed, FRONTENDS):
                running.append(_start(frontend, container.port))
            targets = ([stack.direct_target("container direct", "bench-noop"), stack.invoke_target("dockyard", "bench-noop")]
                       + [t for _, t in running])
            progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
            samples = {(plan.tool, c): runs for c, runs in side_by_side(plan, targets, progress).items()}
            python = replace(plan, tool=load.HTTP_CLIENT, concurrencies=(1,))
            samples.update({(python.tool, c): runs for c, runs in side_by_side(python, targets, progress).items()})
        finally:
            for proc, _ in running:
                proc.terminate()
                proc.wait(30)
    rows = []
    for (tool, concurrency), runs in samples.items():
        base, direct = runs["aiohttp"], runs["container direct"]
        for name, s in runs.items():
            figures = summary(s)
            cpu = figures.get("cpu_us_per_request")
            versus = ratios([x.cpu_us or 0.0 for x in base], [x.cpu_us or 0.0 for x in s]) if name != "container direct" else None
            added = paired([x.p50_ms for x in s], [x.p50_ms for x in direct]) if name != "container direct" else None
            rows.append([tool.split()[0], str(concurrency), name, figures["p50_ms"].text(3), added.text(3) if added else "—",
                         figures["rps"].text(0), cpu.text(0) if cpu else "—", versus.text(2) if versus else "—"])
    return table(["client", "conc.", "server", "p50 ms", "added p50 ms (paired)", "req/s",
                  "CPU µs/req (server, or container)", "aiohttp CPU / this CPU"], rows)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.frontends", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs, one repeat")
    p.add_argument("--serve", nargs=2, metavar=("FRONTEND", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    tool = load.pick_tool("auto")
    plan = Plan(tool=tool, concurrencies=(1, 8), duration=1.0 if args.quick else 2.0,
                warmup=1.0, repeats=1 if args.quick else 5)
    print(f"Load: {load.tool_version(tool)}; {plan.repeats} run(s) of {plan.duration:g} s; "
          f"load average at start {os.getloadavg()[0]:.1f}\n")
    print(measure(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The HTTP server of the SageMaker container contract, and the start-up sequence.

``GET /ping``, ``POST /invocations`` and ``GET /execution-parameters`` on SAGEMAKER_BIND_TO_PORT.
The model is loaded before the port opens, so a broken model makes the process exit non-zero
instead of listening unhealthy. The last line on stderr of a failed start is always the reason
(``dockyard.serving: …``): dockyard quotes a failed container's last log lines to the user.
SIGTERM or SIGINT stop the server gracefully: the port closes, requests in flight get
``GRACE_SECONDS`` to finish, and the process exits 0 (during start-up: at once, also 0).

A streamed reply (the handlers returned an iterator) goes out with chunked transfer encoding,
each chunk written as the worker produces it. SAGEMAKER_MODEL_SERVER_TIMEOUT covers the whole
reply; a stream that breaks off or runs past it is cut (the connection is dropped without the last
chunk), so the client sees a broken body, never one that looks complete.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Coroutine
from contextlib import aclosing
from typing import Any

from aiohttp import hdrs, web

from dockyard.serving import codecs, multimodel
from dockyard.serving.errors import StartupError
from dockyard.serving.frameworks import load_framework
from dockyard.serving.handlers import load_user_module
from dockyard.serving.multimodel import ModelRegistry
from dockyard.serving.pipeline import Pipeline
from dockyard.serving.runners import ChunkStream, Runner, StreamFailed, make_runner
from dockyard.serving.settings import Settings

log = logging.getLogger("dockyard.serving")

# Well inside SageMaker's 30 s between SIGTERM and SIGKILL.
GRACE_SECONDS = 10.0
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
_PREFIX = "dockyard.serving: "


def build_app(settings: Settings, runner: Runner | ModelRegistry) -> web.Application:
    """The aiohttp application serving ``runner``: one model, or (a ``ModelRegistry``) the models
    the platform loads on demand."""
    timeout = settings.timeout
    timeout_message = f"the prediction did not finish within {timeout:g} s"
    timed_out = (500, f"{timeout_message} (SAGEMAKER_MODEL_SERVER_TIMEOUT)".encode(), codecs.TEXT)
    execution_parameters = json.dumps(
        {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": settings.max_payload_mb,
        }
    ).encode()

    async def ping(request: web.Request) -> web.Response:
        # The model is loaded before the port opens, so reaching here means ready.
        if runner.healthy:
            return web.Response()
        return web.Response(status=500, text="no inference worker can be started; see the log")

    async def invocations(request: web.Request, model: Runner) -> web.StreamResponse:
        body = await request.read()
        headers = request.headers
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            status, reply, content_type = await asyncio.wait_for(
                model.submit(
                    body,
                    headers.get(hdrs.CONTENT_TYPE, ""),
                    headers.get(hdrs.ACCEPT, ""),
                    headers.get(CUSTOM_ATTRIBUTES, ""),
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            log.error("a prediction ran past SAGEMAKER_MODEL_SERVER_TIMEOUT=%g s", timeout)
            status, reply, content_type = timed_out
        if isinstance(reply, bytes):
            return web.Response(status=status, body=reply, headers={hdrs.CONTENT_TYPE: content_type})
        return await stream(request, status, reply, content_type, deadline)

    async def stream(
        request: web.Request, status: int, chunks: ChunkStream, content_type: str, deadline: float
    ) -> web.StreamResponse:
        out = web.StreamResponse(status=status, headers={hdrs.CONTENT_TYPE: content_type})
        out.enable_chunked_encoding()
        loop = asyncio.get_running_loop()
        async with aclosing(chunks):
            await out.prepare(request)
            try:
                async for chunk in _within(chunks, deadline, loop):
                    await out.write(chunk)
            except (asyncio.TimeoutError, StreamFailed, ConnectionError) as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    log.error("a streamed reply ran past SAGEMAKER_MODEL_SERVER_TIMEOUT=%g s", timeout)
                if request.transport is not None:
                    request.transport.abort()
                return out
        await out.write_eof()
        return out

    async def execution_parameters_handler(request: web.Request) -> web.Response:
        return web.Response(body=execution_parameters, content_type=codecs.JSON)

    app = web.Application(client_max_size=settings.max_payload_mb * 1024 * 1024)
    app.router.add_get("/ping", ping)
    if isinstance(runner, ModelRegistry):
        multimodel.add_routes(app, runner, invocations)
    else:
        single: Runner = runner

        async def single_model(request: web.Request) -> web.StreamResponse:
            return await invocations(request, single)

        app.router.add_post("/invocations", single_model)
    app.router.add_get("/execution-parameters", execution_parameters_handler)
    return app


async def _within(
    chunks: ChunkStream, deadline: float, loop: asyncio.AbstractEventLoop
) -> AsyncIterator[bytes]:
    """``chunks``, each awaited no later than ``deadline``."""
    while True:
        try:
            chunk = await asyncio.wait_for(anext(chunks), deadline - loop.time())
        except StopAsyncIteration:
            return
        yield chunk


async def _serve(settings: Settings, runner: Runner | ModelRegistry, loaded: str) -> None:
    await runner.start()
    # Access lines cost time on every request; they are logged at DEBUG only.
    access_log = log if settings.log_level <= logging.DEBUG else None
    app_runner = web.AppRunner(
        build_app(settings, runner), access_log=access_log, shutdown_timeout=GRACE_SECONDS
    )
    await app_runner.setup()
    site = web.TCPSite(app_runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await app_runner.cleanup()
        await runner.close()
        raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "serving %s on http://%s:%d with %d worker%s (%s)",
        settings.framework,
        settings.host,
        settings.port,
        settings.workers,
        "" if settings.workers == 1 else "s",
        loaded,
    )
    await stop.wait()
    log.info("stopping: letting requests in flight finish (up to %g s)", GRACE_SECONDS)
    await app_runner.cleanup()
    await runner.close()
    log.info("stopped")


def _configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    # User code's print() goes to the container log promptly, not when a buffer fills.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)


def _report(error: BaseException) -> None:
    """The reason first and last, with the traceback of a failure in user code between."""
    line = _PREFIX + str(error)
    cause = error.__cause__
    if cause is not None:
        print(line, file=sys.stderr)
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
    print(line, file=sys.stderr, flush=True)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed (cheaper sockets per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def serve(settings: Settings) -> int:
    """Load the model, serve until SIGTERM/SIGINT; return the process exit code."""
    try:
        framework = load_framework(settings.framework)
        if settings.workers > 1 and not framework.fork_safe:
            log.warning(
                "SAGEMAKER_MODEL_SERVER_WORKERS=%d ignored: %s hangs in forked worker processes; "
                "serving with one worker, which uses every CPU",
                settings.workers,
                framework.name,
            )
            settings = dataclasses.replace(settings, workers=1)
        if settings.multi_model:
            # Models arrive through POST /models, each with its own handlers.
            _run(_serve(settings, ModelRegistry(settings, framework), "multi-model: models load on demand"))
        else:
            user = load_user_module(settings, framework.hooks)
            log.info("handlers from %s; loading the model from %s", user.describe(), settings.model_dir)
            pipeline = Pipeline(settings, framework, user)
            runner = make_runner(settings, pipeline, framework.fork_safe)
            runner.prepare()
            _run(_serve(settings, runner, f"model loaded in {pipeline.load_seconds:.2f} s"))
    except KeyboardInterrupt:
        log.info("stopped before the server was ready")
        return 0
    except StartupError as exc:
        _report(exc)
        return 1
    except Exception as exc:
        error = StartupError(f"unexpected error: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        _report(error)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """``python -m dockyard.serving serve``: SageMaker starts containers with the argument serve."""
    if argv != ["serve"]:
        print("usage: python -m dockyard.serving serve", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except StartupError as exc:
        _report(exc)
        return 1
    _configure_logging(settings.log_level)
    # Until the event loop takes the signals over, SIGTERM stops a start in progress as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    return serve(settings)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

"""The multi-model container contract: models loaded and unloaded on demand by the platform.

With ``SAGEMAKER_MULTI_MODEL=true`` the server starts with no model and answers SageMaker's
multi-model API (the Multi Model Server's management API):

- ``POST /models`` ``{"model_name": ..., "url": ...}``: load the model unpacked in directory
  ``url`` (its own ``code/inference.py`` handlers, or the framework's defaults, and its own
  ``code/requirements.txt``, installed into a layer: see ``layers``); 409 when a model
  of that name is loaded, 507 when memory runs out (the platform unloads another and retries).
- ``GET /models`` (``limit``, ``next_page_token``), ``GET /models/{name}``,
  ``DELETE /models/{name}`` (404 for a name not loaded).
- ``POST /models/{name}/invoke``: one prediction by that model; ``POST /invocations`` with the
  ``X-Amzn-SageMaker-Target-Model`` header does the same by the model's name.

Each model has its own inference thread (``ThreadRunner``): forked workers would not see the
models loaded after they were forked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dockyard.serving.errors import StartupError
from dockyard.serving.frameworks import Framework
from dockyard.serving.handlers import load_user_module
from dockyard.serving.layers import LayerError, add_requirements
from dockyard.serving.pipeline import Pipeline
from dockyard.serving.runners import ThreadRunner
from dockyard.serving.settings import Settings

log = logging.getLogger("dockyard.serving")

TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
_DEFAULT_PAGE = 100


@dataclass
class _Loaded:
    name: str
    url: str
    runner: ThreadRunner
    load_seconds: float


def _error(status: int, message: str) -> web.Response:
    # The Multi Model Server's error body.
    return web.json_response({"code": status, "message": message}, status=status)


class ModelRegistry:
    """The models this container has loaded, by name. Stands where a single model's ``Runner``
    would (``healthy``, ``start``, ``close``)."""

    healthy = True

    def __init__(self, settings: Settings, framework: Framework) -> None:
        self._settings = settings
        self._framework = framework
        self.models: dict[str, _Loaded] = {}
        # Names being loaded: a second POST for one of them is a conflict, as for a loaded one.
        self._loading: set[str] = set()

    def _pipeline(self, url: str) -> Pipeline:
        """Load one model from its directory (blocking: runs in a thread)."""
        settings = dataclasses.replace(
            self._settings, model_dir=url, code_dirs=(os.path.join(url, "code"),), submit_dir=None,
            program_explicit=False,
        )
        add_requirements(url, self._settings.layers_dir)
        user = load_user_module(settings, self._framework.hooks)
        return Pipeline(settings, self._framework, user)

    async def load(self, name: str, url: str) -> web.Response:
        if name in self.models or name in self._loading:
            return _error(409, f"Model {name} is already registered.")
        if not os.path.isdir(url):
            return _error(404, f"Model directory {url} of {name} does not exist.")
        self._loading.add(name)
        start = time.perf_counter()
        try:
            pipeline = await asyncio.to_thread(self._pipeline, url)
        except MemoryError:
            return _error(507, f"Not enough memory to load model {name}.")
        except KeyboardInterrupt:
            # Raised by the model's own code on the loading thread (signals reach only the main
            # thread): it fails this load, not the container with every model it has.
            log.exception("loading model %s from %s raised KeyboardInterrupt", name, url)
            return _error(500, f"Failed to load model {name}: its code raised KeyboardInterrupt")
        except StartupError as exc:
            log.error("loading model %s from %s failed: %s", name, url, exc)
            return _error(500, f"Failed to load model {name}: {exc}")
        except LayerError as exc:
            log.error("installing the requirements of model %s from %s failed: %s", name, url, exc)
            return _error(500, f"Failed to load model {name}: could not install its code/requirements.txt ({exc})")
        finally:
            self._loading.discard(name)
        runner = ThreadRunner(pipeline)
        await runner.start()
        self.models[name] = _Loaded(name, url, runner, time.perf_counter() - start)
        log.info("loaded model %s from %s in %.3f s", name, url, self.models[name].load_seconds)
        return web.json_response({"status": f"Model {name} loaded."})

    async def unload(self, name: str) -> web.Response:
        model = self.models.pop(name, None)
        if model is None:
            return _error(404, f"Model {name} is not loaded.")
        await model.runner.close()
        # Its thread holds the model until it ends (a prediction in flight finishes first).
        await asyncio.to_thread(model.runner.join, self._settings.timeout)
        del model
        # A loaded pipeline holds reference cycles (bound handlers): collect them now, so that the
        # memory the platform unloaded this model to get back is given back at once.
        gc.collect()
        log.info("unloaded model %s", name)
        return web.json_response({"status": f"Model {name} unloaded."})

    def describe(self, name: str) -> dict[str, str]:
        return {"modelName": name, "modelUrl": self.models[name].url}

    async def start(self) -> None:
        """Each model's thread starts when it loads. The framework's usual modules are imported
        now, not by the first model's load; what is imported lives as long as the server: frozen
        out of the collector, the ``gc.collect()`` of each unload scans only what models made (a
        full collection over the framework's objects takes ~0.1 s)."""
        self._framework.import_preload()
        gc.freeze()

    async def close(self) -> None:
        for name in list(self.models):
            await self.unload(name)


# Answers one request with one model's runner (``server.build_app``'s invocation handler).
Predict = Callable[[web.Request, ThreadRunner], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application, registry: ModelRegistry, predict: Predict) -> None:
    """The multi-model API on ``app``."""

    async def load(request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except ValueError:
            return _error(400, "the body must be a JSON object with model_name and url")
        name, url = (spec.get(k) if isinstance(spec, dict) else None for k in ("model_name", "url"))
        if not isinstance(name, str) or not isinstance(url, str) or not name or not url:
            return _error(400, "the body must be a JSON object with model_name and url")
        return await registry.load(name, url)

    async def listing(request: web.Request) -> web.Response:
        names = sorted(registry.models)
        try:
            limit = int(request.query.get("limit", _DEFAULT_PAGE))
            start = int(request.query.get("next_page_token", 0) or 0)
        except ValueError:
            return _error(400, "limit and next_page_token must be integers")
        limit = max(1, limit)
        page: dict[str, Any] = {"models": [registry.describe(n) for n in names[start:start + limit]]}
        if start + limit < len(names):
            page["nextPageToken"] = str(start + limit)
        return web.json_response(page)

    async def describe(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in registry.models:
            return _error(404, f"Model {name} is not loaded.")
        return web.json_response([registry.describe(name)])

    async def unload(request: web.Request) -> web.Response:
        return await registry.unload(request.match_info["name"])

    async def invoke_named(name: str, request: web.Request) -> web.StreamResponse:
        model = registry.models.get(name)
        if model is None:
            return _error(404, f"Model {name} is not loaded.")
        return await predict(request, model.runner)

    async def invoke(request: web.Request) -> web.StreamResponse:
        return await invoke_named(request.match_info["name"], request)

    async def invocations(request: web.Request) -> web.StreamResponse:
        name = request.headers.get(TARGET_MODEL)
        if not name:
            return _error(400, f"a multi-model container needs the {TARGET_MODEL} header")
        return await invoke_named(name, request)

    app.router.add_post("/models", load)
    app.router.add_get("/models", listing)
    app.router.add_get("/models/{name}", describe)
    app.router.add_delete("/models/{name}", unload)
    app.router.add_post("/models/{name}/invoke", invoke)
    app.router.add_post("/invocations", invocations)

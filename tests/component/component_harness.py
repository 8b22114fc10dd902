"""The component tier's harness: ``Dockyard``, an aiohttp test client for
``build_app(settings, runtime=fake)`` on a temporary state dir, with helpers that speak the control
plane's JSON 1.1 protocol (``X-Amz-Target``) and the runtime API; ``error_of`` reads an AWS-style
error. A module of its own, not conftest.py: tests import it, and several test directories have a
conftest.py, so ``from conftest import`` would get whichever one was imported last."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from fake_runtime import FakeRuntime

from dockyard.api import runtime_api
from dockyard.server import build_app
from dockyard.settings import Settings

IMAGE = "fake-image:latest"
# How long a helper waits for the reconciler before the test fails (a hang guard, not a timing).
WAIT_LIMIT = 10.0
# How long the server's shutdown may take before the test fails (a hang guard, not a timing).
STOP_LIMIT = 30.0


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Dockyard:
    """One in-process server and the helpers tests drive it with."""

    def __init__(self, make_client: Callable[..., Awaitable[TestClient]], state_dir: Path, fake: FakeRuntime) -> None:
        self._make_client = make_client
        self.state_dir = state_dir
        self.fake = fake
        self.client: TestClient | None = None
        # More settings for a test (set before ``start``).
        self.overrides: dict[str, Any] = {}

    def settings(self) -> Settings:
        return Settings(**{"state_dir": self.state_dir, "health_interval": 0.02, "stop_grace": 1.0, "startup_timeout": 5.0,
                           "restart_backoff": 0.01, "restart_backoff_max": 0.05, **self.overrides})

    async def start(self, fake: FakeRuntime | None = None) -> Dockyard:
        if fake is not None:
            self.fake = fake
        app = build_app(self.settings(), runtime=self.fake)
        self.client = await self._make_client(app)
        # As ``dockyard serve`` does: InvokeEndpoint past the router.
        runtime_api.shortcut(self.client.server.runner.server, app)
        return self

    async def stop(self) -> None:
        """Shut the server down (every instance stops); a shutdown that does not end within
        ``STOP_LIMIT`` fails the test, naming the tasks still running, instead of hanging the suite."""
        if self.client is not None:
            client, self.client = self.client, None
            closing = asyncio.ensure_future(client.close())
            if not (await asyncio.wait((closing,), timeout=STOP_LIMIT))[0]:
                stuck = still_running()  # before the cancel, which unwinds the stacks
                closing.cancel()
                raise AssertionError(f"the server did not shut down within {STOP_LIMIT:g} s; tasks still running: {stuck}")
            await closing

    async def restart(self, fake: FakeRuntime | None = None) -> Dockyard:
        """Stop this server (its instances stop) and start a new one on the same state dir."""
        await self.stop()
        return await self.start(fake if fake is not None else FakeRuntime(self.fake.images))

    # --- control plane (JSON 1.1) ------------------------------------------------------------

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One control-plane operation; an AWS error raises ``AwsError``."""
        return await self._post(f"SageMaker.{operation}", params)

    async def scaling(self, operation: str, **params: Any) -> dict[str, Any]:
        """One Application Auto Scaling operation; an AWS error raises ``AwsError``."""
        return await self._post(f"AnyScaleFrontendService.{operation}", params)

    async def _post(self, target: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        resp = await self.client.post(
            "/",
            data=json.dumps(params),
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        body = await resp.json(content_type=None)
        if resp.status >= 300:
            raise AwsError(resp.status, body.get("__type", ""), body.get("message", body.get("Message", "")))
        return body

    async def create_model(self, name: str, image: str = IMAGE, env: dict[str, str] | None = None,
                           **extra: Any) -> None:
        container = {"Image": image, "Environment": env or {}}
        if extra:
            await self.call("CreateModel", ModelName=name, **extra)
        else:
            await self.call("CreateModel", ModelName=name, PrimaryContainer=container)

    async def create_config(self, name: str, variants: list[dict[str, Any]]) -> None:
        await self.call("CreateEndpointConfig", EndpointConfigName=name, ProductionVariants=[
            {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, "InitialVariantWeight": 1.0, **v}
            for v in variants
        ])

    async def deploy(self, name: str, env: dict[str, str] | None = None, instances: int = 1,
                     image: str = IMAGE, wait: str | None = "InService") -> None:
        """A one-variant endpoint ``name`` (model and config of the same name)."""
        await self.create_model(name, image, env)
        await self.create_config(name, [{"VariantName": "AllTraffic", "ModelName": name,
                                         "InitialInstanceCount": instances}])
        await self.call("CreateEndpoint", EndpointName=name, EndpointConfigName=name)
        if wait is not None:
            await self.wait_status(name, wait)

    async def describe(self, name: str) -> dict[str, Any]:
        return await self.call("DescribeEndpoint", EndpointName=name)

    async def wait_status(self, name: str, status: str) -> dict[str, Any]:
        """DescribeEndpoint until ``status`` (settled statuses only: a wrong one fails at once)."""
        async def poll() -> dict[str, Any]:
            while True:
                ep = await self.describe(name)
                if ep["EndpointStatus"] == status:
                    return ep
                if ep["EndpointStatus"] in ("InService", "Failed") and status in ("InService", "Failed"):
                    raise AssertionError(f"endpoint {name} is {ep['EndpointStatus']}, not {status}: {ep}")
                await asyncio.sleep(0.005)

        return await asyncio.wait_for(poll(), WAIT_LIMIT)

    async def wait_gone(self, name: str) -> None:
        async def poll() -> None:
            while True:
                try:
                    await self.describe(name)
                except AwsError as exc:
                    assert "Could not find" in exc.message, exc
                    return
                await asyncio.sleep(0.005)

        await asyncio.wait_for(poll(), WAIT_LIMIT)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds (the reconciler acts in the background)."""
        async def poll() -> None:
            while not condition():
                await asyncio.sleep(0.005)

        await asyncio.wait_for(poll(), WAIT_LIMIT)

    # --- runtime API -------------------------------------------------------------------------

    async def invoke(self, endpoint: str, body: bytes | str = b"{}", **headers: str) -> ClientResponse:
        """POST an invocation; the response is read (``await resp.read()`` is cached)."""
        assert self.client is not None
        headers.setdefault("Content-Type", "application/json")
        resp = await self.client.post(f"/endpoints/{endpoint}/invocations", data=body, headers=headers)
        await resp.read()
        return resp


def still_running() -> str:
    """The event loop's other tasks, each with where it waits (what a hung shutdown waits for)."""
    rows = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        frames = []
        # The chain of awaits (Task.get_stack gives only the outermost frame of a suspended task).
        awaiting: Any = task.get_coro()
        while (frame := getattr(awaiting, "cr_frame", None)) is not None:
            frames.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
            awaiting = awaiting.cr_await
        rows.append(f"task {task.get_name()!r} at {' > '.join(frames) or 'its start'}")
    return "; ".join(rows) or "no other task"


async def error_of(resp: ClientResponse) -> tuple[int, str, str]:
    """Status, ``__type`` and message of an AWS-style error response."""
    body = await resp.json(content_type=None)
    return resp.status, body.get("__type", ""), body.get("message", body.get("Message", ""))

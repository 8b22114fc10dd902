"""The component tier: the whole server (``build_app``) in-process, on a ``FakeRuntime``.

``dockyard`` is a ``Dockyard`` (component_harness.py) on a temporary state dir whose fake runtime
serves ``IMAGE``. Tests run in milliseconds and need no model server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from component_harness import IMAGE, Dockyard
from fake_runtime import Behaviour, FakeRuntime


@pytest.fixture
def fake() -> FakeRuntime:
    return FakeRuntime({IMAGE: Behaviour()})


@pytest.fixture
async def dockyard(aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, fake: FakeRuntime) -> Any:
    server = Dockyard(aiohttp_client, tmp_path / "state", fake)
    await server.start()
    yield server
    await server.stop()

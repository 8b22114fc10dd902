"""Helpers for the docker runtime's tests (a module of its own: every conftest.py outside a
package is imported as ``conftest``, so importing from one by name is unreliable)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.docker import OWNER_LABEL


def owned_containers(engine: Any, state_dir: Path, **labels: str) -> list[Any]:
    """Every container (running or not) a server with ``state_dir`` owns, optionally filtered by label."""
    filters = [f"{OWNER_LABEL}={state_dir.resolve()}", *(f"io.dockyard.{k}={v}" for k, v in labels.items())]
    # A container removed between the listing and its inspection (dockyard replacing it) is skipped.
    return engine.containers.list(all=True, filters={"label": filters}, ignore_removed=True)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)

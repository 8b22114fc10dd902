"""The fork server (``runtime/forkserver.py`` + ``zygote.py``) on its own, with a real zygote: exit
codes come back through it, a framework it cannot serve falls back to spawn, and a container whose
start was abandoned does not run on unowned."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from dockyard.runtime.forkserver import ForkedProcess, ForkServer
from dockyard.runtime.ports import free_port
from dockyard.runtime.process import _import_path
from dockyard.runtime.processes import OWNER_VARIABLE

pytest.importorskip("sklearn")


def zygote_env(extra: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), **extra, OWNER_VARIABLE: "component-test", "PYTHONUNBUFFERED": "1"}


def framework_env(name: str) -> dict[str, str]:
    return {"DOCKYARD_FRAMEWORK": name, **_import_path()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_exit_code_and_output_of_a_forked_container(tmp_path):
    forks = ForkServer(tmp_path / "zygotes", None, zygote_env)
    try:
        extra = framework_env("sklearn")
        # An invalid port: the model server exits 1 at once, saying why on stderr.
        env = {**extra, "SAGEMAKER_BIND_TO_PORT": "not-a-port", "DOCKYARD_MODEL_DIR": str(tmp_path)}
        log = tmp_path / "c.log"
        forked = await forks.fork(sys.executable, "sklearn", extra, env, tmp_path, log, 120)
        assert isinstance(forked, ForkedProcess)
        assert await asyncio.wait_for(forked.wait(), 60) == 1
        assert forked.returncode == 1
        assert "dockyard.serving: SAGEMAKER_BIND_TO_PORT must be an integer" in log.read_text()
    finally:
        await forks.close(5)


async def test_an_unknown_framework_is_spawned(tmp_path):
    forks = ForkServer(tmp_path / "zygotes", None, zygote_env)
    try:
        extra = framework_env("no-such-framework")
        for _ in range(2):  # the second time without starting a zygote again
            assert await forks.fork(sys.executable, "no-such-framework", extra, extra, tmp_path, tmp_path / "c.log", 120) is None
        (zygote_log,) = (tmp_path / "zygotes").iterdir()
    finally:
        await forks.close(5)
    assert zygote_log.name.startswith("no-such-framework-")


def children(pid: int) -> list[int]:
    """Live (not zombie) children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return [child for child in found if alive(child)]


async def test_an_abandoned_start_leaves_no_container(tmp_path):
    import joblib
    from e2e.models import iris_classifier

    joblib.dump(iris_classifier(), tmp_path / "model.joblib")
    forks = ForkServer(tmp_path / "zygotes", None, zygote_env)
    try:
        extra = framework_env("sklearn")
        env = {**extra, "DOCKYARD_MODEL_DIR": str(tmp_path)}
        # A served model: left alone, this container would run until stopped. Its start is
        # cancelled as soon as the request is sent (the zygote answers in order, so the next
        # request's answer comes after this one's pid).
        abandoned = asyncio.ensure_future(forks.fork(
            sys.executable, "sklearn", extra, {**env, "SAGEMAKER_BIND_TO_PORT": str(free_port())},
            tmp_path, tmp_path / "c.log", 120))
        while not (tmp_path / "c.log").exists():
            await asyncio.sleep(0)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        kept = await forks.fork(sys.executable, "sklearn", extra, {**env, "SAGEMAKER_BIND_TO_PORT": str(free_port())},
                                tmp_path, tmp_path / "kept.log", 120)
        assert isinstance(kept, ForkedProcess)
        zygote = int(Path(f"/proc/{kept.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        deadline = asyncio.get_running_loop().time() + 20
        while children(zygote) != [kept.pid]:
            assert asyncio.get_running_loop().time() < deadline, f"the abandoned container kept running: {children(zygote)}"
            await asyncio.sleep(0.05)
    finally:
        await forks.close(5)

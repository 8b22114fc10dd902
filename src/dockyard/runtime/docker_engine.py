"""Connecting to a container engine through the Docker Engine API, and reading its numbers.

One place decides how dockyard finds the engine: ``DOCKER_HOST`` (and the other variables the
docker CLI reads), else the default socket. Docker's ``dockerd`` and Podman's API socket
(``podman system service``) both answer. Used by the docker runtime, ``dockyard images`` and
the tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker

# Log followers and the event watcher each hold a connection for as long as they run.
MAX_POOL_SIZE = 64


class EngineUnavailable(Exception):
    """No container engine answers; ``str(e)`` says where dockyard looked and what to do."""


def engine_address() -> str:
    """Where the engine is looked for, for messages."""
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST, checked with a ping."""
    try:
        import docker
    except ImportError:
        raise EngineUnavailable("The docker runtime needs the docker SDK: pip install 'dockyard[docker]'.") from None
    try:
        client = docker.from_env(timeout=int(timeout), max_pool_size=MAX_POOL_SIZE)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(
            f"No container engine answers at {engine_address()}: {exc}. Start dockerd, or Podman's API "
            f"socket (podman system service --time=0 unix:///run/podman.sock) with "
            f"DOCKER_HOST=unix:///run/podman.sock; or run dockyard with --runtime process."
        ) from None
    return client


def has_cpu_baseline(stats: dict[str, Any]) -> bool:
    """Whether one reading carries the earlier sample CPU % needs (Docker's do; Podman 4's do not)."""
    return bool((stats.get("precpu_stats") or {}).get("system_cpu_usage"))


def usage(stats: dict[str, Any], earlier: dict[str, Any] | None = None) -> tuple[float | None, int | None]:
    """CPU percent (100 = one core busy) and memory in use from a ``/containers/{id}/stats`` reading,
    against ``earlier`` (another reading) or else the reading's own ``precpu_stats``.

    Memory excludes the page cache, as ``docker stats`` does (cgroup v1 ``cache``, v2 ``inactive_file``).
    """
    cpu_percent = None
    cpu = stats.get("cpu_stats") or {}
    pre = (earlier.get("cpu_stats") if earlier else stats.get("precpu_stats")) or {}
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
        cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or ()) or 1
        if system_delta > 0:
            cpu_percent = 100.0 * cpu_delta / system_delta * cpus
    except (KeyError, TypeError):
        pass
    memory = stats.get("memory_stats") or {}
    in_use = memory.get("usage")
    if in_use is not None:
        extra = memory.get("stats") or {}
        in_use -= extra.get("cache", extra.get("inactive_file", 0))
    return cpu_percent, in_use


# Where a container's memory cgroup is, for cgroup v1 and v2 and the cgroupfs and systemd drivers.
_CGROUP_DIRS = ("/sys/fs/cgroup/memory/docker/{id}", "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope",
                "/sys/fs/cgroup/docker/{id}", "/sys/fs/cgroup/system.slice/docker-{id}.scope")


def cgroup_memory(container_id: str) -> int | None:
    """A container's memory in use read from its cgroup on this machine, as ``usage`` counts it
    (without the inactive page cache); None when the cgroup is not found here (a remote engine,
    Podman's own layout)."""
    for pattern in _CGROUP_DIRS:
        root = Path(pattern.format(id=container_id))
        v1 = (root / "memory.usage_in_bytes").exists()
        try:
            in_use = int((root / ("memory.usage_in_bytes" if v1 else "memory.current")).read_text())
            stat = dict(line.split() for line in (root / "memory.stat").read_text().splitlines())
        except (OSError, ValueError):
            continue
        return in_use - int(stat.get("total_inactive_file" if v1 else "inactive_file", 0))
    return None

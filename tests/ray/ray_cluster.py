"""A local Ray cluster for tests and benchmarks: a head and worker nodes started with ``ray start``,
each on its own free ports with its own custom resources, stopped
(or killed, to lose a node) by SIGKILL to its processes — never with a global ``ray stop``, which would end
every other Ray cluster on the machine.

Nodes run on this interpreter (``python -m ray.scripts.scripts``), so that their workers import
the dockyard under test. The head's system config shortens Ray's node health check, as
docs/scale-out.md recommends, so that a killed node is declared dead within about two seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.runtime.ports import free_range

# docs/scale-out.md: a node missing 3 health checks 500 ms apart (each answered within 500 ms) is dead.
HEALTH_CHECK = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 500,
                "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
GIB = 1024**3
# Ports of one node: 8 for its components, the rest for its workers (drivers and actors).
WORKER_PORTS = 100
NODE_PORTS = 8 + WORKER_PORTS


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    resources: dict[str, float]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the node's every process at once: ``ray start``, the raylet and its agents, and the
        workers (actors, which Ray starts in sessions of their own) with their containers."""
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP the node's every process: a node that vanishes without closing a connection (a
        network partition, a power loss), which only the GCS health check can tell."""
        self._signal(signal.SIGSTOP)

    def _signal(self, sig: int) -> None:
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


@dataclass
class Cluster:
    root: Path
    # The head's Ray system config for node health checks; None: Ray's defaults.
    health_check: dict[str, int] | None = field(default_factory=lambda: dict(HEALTH_CHECK))
    address: str = ""
    # Ray's session directory holds UNIX sockets, whose paths may not exceed 107 bytes: a short one.
    temp_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="dyray-"))
    nodes: list[Node] = field(default_factory=list)
    _taken: list[int] = field(default_factory=list)

    def start_node(self, name: str, cpus: int, memory_gib: float, resources: dict[str, float] | None = None) -> Node:
        """Start a node (the first one is the head) and wait until the cluster lists it."""
        head = not self.nodes
        resources = {name: 1.0, **(resources or {})}  # a resource named after the node: placement is observable
        # Every port of the node from one run of free ports no other node of this cluster took, so
        # that no two components (nor two nodes) pick the same one.
        low = self._free_ports()
        flags = ["--node-manager-port", "--object-manager-port", "--metrics-export-port", "--runtime-env-agent-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--port", "--ray-client-server-port"]
        ports = dict(zip(flags, range(low, low + len(flags))))
        workers = low + len(flags)
        args = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats",
                "--node-ip-address", "127.0.0.1", f"--num-cpus={cpus}", f"--memory={int(memory_gib * GIB)}",
                f"--object-store-memory={100 * 1024**2}", f"--resources={json.dumps(resources)}",
                f"--min-worker-port={workers}", f"--max-worker-port={workers + WORKER_PORTS - 1}",
                *(f"{flag}={port}" for flag, port in list(ports.items())[:6])]
        if head:
            self.address = f"127.0.0.1:{ports['--port']}"
            args += ["--head", f"--port={ports['--port']}", f"--ray-client-server-port={ports['--ray-client-server-port']}",
                     "--include-dashboard=false",
                     f"--temp-dir={self.temp_dir}"]
            if self.health_check is not None:
                args.append(f"--system-config={json.dumps(self.health_check)}")
        else:
            args += [f"--address={self.address}"]
        log = self.root / f"{name}.log"
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        node = Node(name, proc, log, resources)
        self.nodes.append(node)
        self._wait_for(name, proc, log)
        return node

    def _free_ports(self) -> int:
        """The first of NODE_PORTS free ports in a row, apart from the other nodes' runs."""
        while True:
            low = free_range(NODE_PORTS)[0]
            if all(abs(low - taken) >= NODE_PORTS for taken in self._taken):
                self._taken.append(low)
                return low

    def _wait_for(self, name: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ray node {name} exited: {log.read_text(errors='replace')[-2000:]}")
            if name in self.alive_resources():
                return
            time.sleep(0.5)
        raise RuntimeError(f"ray node {name} did not join within {timeout} s: {log.read_text(errors='replace')[-2000:]}")

    def alive_resources(self) -> dict[str, float]:
        """The total resources of the cluster's live nodes (this process is a driver of the cluster)."""
        import ray

        if not ray.is_initialized():
            # Ray would retry an address that does not answer for minutes: until the head's GCS
            # accepts connections, the cluster is empty.
            host, _, port = self.address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except OSError:
                return {}
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        return dict(ray.cluster_resources())

    def node_id(self, name: str) -> str:
        """The Ray node id of the live node started as ``name``."""
        import ray

        return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and name in n["Resources"])

    def stop(self) -> None:
        import ray

        ray.shutdown()
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_cluster(root: Path | None = None, health_check: dict[str, int] | None = HEALTH_CHECK) -> Cluster:
    root = Path(root or tempfile.mkdtemp(prefix="dockyard-ray-"))
    root.mkdir(parents=True, exist_ok=True)
    return Cluster(root, None if health_check is None else dict(health_check))

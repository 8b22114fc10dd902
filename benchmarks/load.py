"""Load generation: one run of one target at one concurrency, by ``wrk`` or an asyncio client.

``wrk`` (Debian's package) is the load tool when it is installed: written in C, one thread of it
loads a Python server without competing for much of the machine's CPU. Without it the suite
falls back to ``benchmarks.aioclient``, an aiohttp client with keep-alive, so the quick mode
runs anywhere. ``benchmarks.pyclient`` sends like boto3 (``http.client``: head and body in two writes). Each
runs in its own process, keeps ``concurrency`` connections busy for a fixed time, and reports the
request count, errors and latency percentiles of that run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import procs

LUA_SCRIPT = Path(__file__).with_name("post.lua")
# benchmarks.pyclient as boto3 sends (head, then body), and with head and body in one write.
HTTP_CLIENT, ONE_WRITE = "http.client", "http.client one write"


@dataclass(frozen=True)
class Target:
    """Something to load: a URL, a request body and the headers that go with it."""

    name: str
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    # The process whose CPU time per request is recorded (the gateway, or the container) ...
    cpu_pid: int | None = None
    # ... with its descendants (a container's worker processes; not the gateway's containers).
    cpu_children: bool = False


@dataclass(frozen=True)
class Sample:
    """The figures of one run."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "rps": self.rps}


class LoadError(RuntimeError):
    """The load tool failed, or the target answered with errors."""


def pick_tool(requested: str) -> str:
    """``wrk`` when asked for or installed (``auto``), else ``aiohttp``."""
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "aiohttp"
    if requested == "wrk" and not shutil.which("wrk"):
        raise LoadError("wrk is not installed: apt-get install -y wrk, or use --client aiohttp")
    return requested


def tool_version(tool: str) -> str:
    if tool == "wrk":
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
        return out.splitlines()[0].split(" Copyright")[0] if out else "wrk"
    if tool.startswith("http.client"):
        writes = "one write" if tool == ONE_WRITE else "two writes"
        return f"Python {sys.version.split()[0]} http.client, head and body in {writes} (benchmarks.pyclient)"
    import aiohttp

    return f"aiohttp {aiohttp.__version__} client (benchmarks.aioclient)"


def check(target: Target) -> bytes:
    """One request; the response body. Raises LoadError on anything but HTTP 200."""
    request = urllib.request.Request(target.url, data=target.body, headers=dict(target.headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.read()
    except OSError as exc:
        detail = exc.read()[:300] if hasattr(exc, "read") else b""
        raise LoadError(f"{target.name}: {target.url} answered {exc} {detail!r}") from None


def run(tool: str, target: Target, concurrency: int, duration: float) -> Sample:
    """Load ``target`` with ``concurrency`` keep-alive connections for ``duration`` seconds."""
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(target.body)
        headers = "\n".join(f"{k}: {v}" for k, v in target.headers)
        if tool == "wrk":
            command = [
                "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, math.ceil(duration))}s", "--timeout", "30s",
                "-s", str(LUA_SCRIPT), target.url,
            ]
        else:
            module = "benchmarks.pyclient" if tool.startswith("http.client") else "benchmarks.aioclient"
            command = [sys.executable, "-m", module, target.url, str(body_file), str(concurrency), str(duration)]
        env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_HEADERS": headers,
               "BENCH_ONE_WRITE": "1" if tool == ONE_WRITE else "0"}
        cpu_before = cpu_seconds(target.cpu_pid, target.cpu_children)
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=duration + 120, check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise LoadError(f"{tool} failed on {target.name} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = cpu_seconds(target.cpu_pid, target.cpu_children) - cpu_before
    figures = json.loads(lines[-1])
    failed = figures["errors"] + figures["non_2xx"]
    if failed:
        raise LoadError(f"{target.name}: {failed} of {figures['requests']} requests failed at concurrency {concurrency}")
    if not figures["requests"]:
        raise LoadError(f"{target.name}: no request completed in {duration:g} s")
    return Sample(
        requests=figures["requests"],
        seconds=figures["seconds"],
        errors=failed,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        cpu_us=cpu / figures["requests"] * 1e6 if target.cpu_pid else None,
    )


def cpu_seconds(pid: int | None, children: bool = False) -> float:
    """User + system CPU seconds ``pid`` (and, with ``children``, its living descendants) has
    used so far (0 without a pid)."""
    if pid is None:
        return 0.0
    total = 0
    for member in procs.tree(pid) if children else [pid]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")

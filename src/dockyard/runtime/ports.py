"""Free loopback ports for containers of the process runtime, and hosts as URLs write them."""

from __future__ import annotations

import random
import socket


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(size: int, rng: random.Random | None = None) -> tuple[int, int]:
    """A run of ``size`` consecutive free ports, for SAGEMAKER_SAFE_PORT_RANGE."""
    rng = rng or random.Random()
    for _ in range(200):
        start = rng.randrange(20000, 60000 - size)
        if all(_bindable(p) for p in range(start, start + size)):
            return start, start + size - 1
    raise OSError(f"no run of {size} free loopback ports found")


def url_host(host: str) -> str:
    """``host`` as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host

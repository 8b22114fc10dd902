"""Following the engine's streams in background threads: container exits and container logs.

The Engine API is blocking, and the reconciler asks "which containers died?" from the event loop
every few seconds, so the answer must be at hand without a round trip: one thread follows the
engine's ``die`` events and records the exit code of every container the runtime watches (and
tells ``on_die``, from its thread, so the runtime can report the exit at once). One
thread per container copies its stdout/stderr into the instance's log file, where ``dockyard
logs`` and FailureReasons read it, as with the process runtime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import requests

from dockyard.runtime.processes import open_log

log = logging.getLogger(__name__)

# How a stream from the engine ends badly: the SDK's errors, the HTTP client's, the socket's, and
# a half-received JSON event.
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError,
)


class ExitWatcher:
    """Exit codes of watched containers, from the engine's ``die`` events."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        self._exits: dict[str, int] = {}
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._stream: Any = None
        # Told (container id, exit code) on the watcher's thread when a watched container dies.
        self.on_die: Callable[[str, int], None] = lambda container_id, code: None
        self._thread = threading.Thread(target=self._follow, name="docker-events", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """Whether the event stream is open: only containers created after that are watched safely."""
        return self._connected.wait(timeout)

    def watch(self, container_id: str) -> None:
        with self._lock:
            self._watched.add(container_id)

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._watched.discard(container_id)
            self._exits.pop(container_id, None)

    def exit_code(self, container_id: str) -> int | None:
        with self._lock:
            return self._exits.get(container_id)

    def _record(self, event: dict[str, Any]) -> None:
        if (event.get("Action") or event.get("status")) != "die":
            return
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id"))
        text = str((actor.get("Attributes") or {}).get("exitCode", "-1"))
        code = int(text) if text.lstrip("-").isdigit() else -1
        with self._lock:
            watched = container_id in self._watched
            if watched:
                self._exits[container_id] = code
        if watched:
            self.on_die(container_id, code)

    def _follow(self) -> None:
        since: float | None = None
        delay = 0.1
        while not self._closed.is_set():
            try:
                # After a reconnect, replay from the last event seen so no exit is missed. Filtered
                # by type only: Podman 4's API matches no "event=die" filter (its event is "died").
                self._stream = self._client.events(decode=True, since=since, filters={"type": "container"})
                self._connected.set()
                delay = 0.1
                for event in self._stream:
                    since = event.get("time", since)
                    self._record(event)
            except STREAM_ERRORS as exc:  # the engine went away or restarted: reconnect with backoff
                if self._closed.is_set():
                    return
                log.warning("lost the container engine's event stream (%s); reconnecting", exc)
            if since is None:
                since = time.time()
            self._closed.wait(delay)
            delay = min(delay * 2, 5.0)

    def close(self) -> None:
        self._closed.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except STREAM_ERRORS as exc:  # a broken stream may fail to close; the thread exits either way
                log.debug("closing the event stream: %s", exc)
        self._thread.join(timeout=5)


class LogFollower:
    """Copies a container's output into ``path`` until the container stops (output from the Unix
    time ``since`` on, when given)."""

    def __init__(self, container: Any, path: Path, since: int | None = None) -> None:
        self._container = container
        self._path = path
        self._since = since
        self._thread = threading.Thread(target=self._copy, name=f"docker-logs-{container.short_id}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            with open_log(self._path) as out:
                for chunk in self._container.logs(stream=True, follow=True, stdout=True, stderr=True, since=self._since):
                    out.write(chunk)
                    out.flush()
        except STREAM_ERRORS as exc:  # the container was removed under us: its output is complete
            log.debug("log stream of %s ended: %s", self._container.short_id, exc)

    def join(self, timeout: float) -> None:
        """Wait until the container's output is all written (its stream ends when it stops)."""
        self._thread.join(timeout)

"""The durable queue of asynchronous inference (InvokeEndpointAsync) and its workers.

* ``accept`` records the request in the state store (on the store's thread) before the API
  answers 202; a request leaves the store only once its result or failure is written. At start
  every stored request is queued again, so a server killed with SIGKILL finishes them all.
* Exactly once from the client's view: before a request runs, and again before its result is
  written, the output (and failure) location is checked; a request whose output exists is only
  marked finished, never run or written again.
* Each endpoint has one backlog, shared by its variants' ready instances (the gateway's routing
  table); each instance runs at most ``MaxConcurrentInvocationsPerInstance`` at a time, on that
  instance (``Gateway.invoke_on``).
* Payloads stream: the input object is read chunk by chunk into the container request, the
  response is written to a temporary file and uploaded from it.
* A request fails (its reason written to the failure location, the error topic notified) when
  its TTL passes before it runs, its input is missing, the container fails or it runs past its
  InvocationTimeoutSeconds. Storage that cannot be reached leaves it queued, retried later.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import IO, Any

from dockyard import errors
from dockyard.asyncinference import notify
from dockyard.asyncinference.requests import AsyncConfig, AsyncRequest
from dockyard.asyncinference.storage import Storage, StorageError
from dockyard.control.store import Store
from dockyard.doorbell import rung
from dockyard.gateway.invocation import WHOLE_BODY, Invocation
from dockyard.gateway.proxy import Gateway
from dockyard.gateway.routing import InstanceRoute, VariantRoute

log = logging.getLogger(__name__)
RETRY_AFTER = 10.0  # seconds before a request whose storage could not be reached runs again
REFRESH_EVERY = 5.0  # seconds between re-reads of which endpoints are asynchronous


class AsyncInference:
    def __init__(self, store: Store, gateway: Gateway, storage: Storage, notifier: notify.Notifier,
                 account_id: str, region: str, poll_interval: float = 0.5) -> None:
        self._store, self._gateway, self._storage, self._notifier = store, gateway, storage, notifier
        self._account_id, self._region, self._poll = account_id, region, poll_interval
        # By lower-cased endpoint name; replaced whole by ``refresh`` (which runs on the store thread).
        self._configs: dict[str, AsyncConfig] = {}
        self._backlog: dict[str, deque[AsyncRequest]] = {}
        self._running: dict[str, AsyncRequest] = {}  # by request id
        self._inflight: dict[str, int] = {}  # by instance id
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # --- which endpoints are asynchronous ------------------------------------------------------

    def refresh(self) -> None:
        """Re-read every endpoint's AsyncInferenceConfig; call it on the store's thread."""
        configs = {}
        for ep in self._store.list_endpoints():
            config = AsyncConfig.from_endpoint_config((ep.pending or ep.deployment).config)
            if config is not None:
                configs[ep.name.lower()] = config
        self._configs = configs

    def is_async(self, endpoint: str) -> bool:
        return endpoint.lower() in self._configs

    # --- accepting -----------------------------------------------------------------------------

    async def accept(self, endpoint: str, input_location: str, **fields: Any) -> AsyncRequest:
        """Record a new request durably and queue it; ``fields`` are ``AsyncRequest.accept_now``'s."""
        try:
            # Only an https:// URL needs the S3 client (its endpoint), made here on first use.
            await asyncio.to_thread(self._storage.locate, input_location)
        except StorageError as exc:
            raise errors.runtime_validation(f"InputLocation {exc}") from None
        route = self._gateway.table.get(endpoint.lower())
        if route is None:
            raise errors.runtime_validation(f"Endpoint {endpoint} of account {self._account_id} not found.")
        config = self._configs.get(endpoint.lower())
        if config is None:
            raise errors.runtime_validation(
                f"Endpoint {route.name} is not an asynchronous inference endpoint: its endpoint config has no "
                "AsyncInferenceConfig. Use InvokeEndpoint."
            )
        req = AsyncRequest.accept_now(route.name, config, input_location, **fields)
        await self._store.run(self._store.insert_async_request, req.id, req.endpoint, req.received, req.to_json())
        self._enqueue(req)
        return req

    def _enqueue(self, req: AsyncRequest) -> None:
        self._backlog.setdefault(req.endpoint.lower(), deque()).append(req)
        if self._wake is not None:
            self._wake.set()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.run(self.refresh)
        for data in await self._store.run(self._store.async_requests):
            self._enqueue(AsyncRequest.from_json(data))
        self._wake = asyncio.Event()
        self._loop_task = asyncio.create_task(self._dispatch_loop())

    async def shutdown(self) -> None:
        """Stop the workers; requests in flight stay stored and run again at the next start."""
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- backlog (metrics, dockyard stats) -----------------------------------------------------

    def backlog(self) -> dict[str, dict[str, float]]:
        """Per endpoint (by name): SageMaker's asynchronous inference metrics, from memory."""
        now = time.time()
        out: dict[str, dict[str, float]] = {}
        running: dict[str, list[AsyncRequest]] = {}
        for req in self._running.values():
            running.setdefault(req.endpoint.lower(), []).append(req)
        for key in self._configs.keys() | self._backlog.keys() | running.keys():
            reqs = [*self._backlog.get(key, ()), *running.get(key, ())]
            route = self._gateway.table.get(key)
            instances = sum(len(v.instances) for v in route.variants) if route is not None else 0
            name = route.name if route is not None else (reqs[0].endpoint if reqs else key)
            out[name] = {
                "ApproximateBacklogSize": len(reqs),
                "ApproximateBacklogSizePerInstance": len(reqs) / instances if instances else len(reqs),
                "ApproximateAgeOfOldestRequest": now - min(r.received for r in reqs) if reqs else 0.0,
                "HasBacklogWithoutCapacity": 1.0 if reqs and not instances else 0.0,
            }
        return out

    def backlog_of(self, endpoint: str) -> dict[str, float] | None:
        """``backlog()`` of one asynchronous endpoint; None for any other."""
        if not self.is_async(endpoint):
            return None
        return next((v for k, v in self.backlog().items() if k.lower() == endpoint.lower()), None)

    # --- dispatching ---------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        refreshed = time.monotonic()
        while True:
            self._wake.clear()
            if time.monotonic() - refreshed > REFRESH_EVERY:
                await self._store.run(self.refresh)
                refreshed = time.monotonic()
            self._dispatch()
            await rung(self._wake, self._poll)

    def _dispatch(self) -> None:
        now = time.time()
        for key, backlog in self._backlog.items():
            config = self._configs.get(key)
            # Requests that can no longer run fail now, whether or not an instance is free.
            for req in [r for r in backlog if config is None or r.expired(now)]:
                backlog.remove(req)
                reason = (f"Request TTL of {req.ttl} seconds expired before the request was processed."
                          if config is not None else f"Endpoint {req.endpoint} was deleted or is no longer asynchronous.")
                self._spawn(req, self._fail(req, reason), None)
            route = self._gateway.table.get(key)
            if config is None or route is None:
                continue
            for variant in route.variants:
                for instance in variant.instances:
                    while backlog and self._inflight.get(instance.instance_id, 0) < config.max_concurrent:
                        req = backlog.popleft()
                        self._spawn(req, self._process(req, variant, instance), instance.instance_id)

    def _spawn(self, req: AsyncRequest, work: Any, instance_id: str | None) -> None:
        if instance_id is not None:
            self._inflight[instance_id] = self._inflight.get(instance_id, 0) + 1
        self._running[req.id] = req
        task = asyncio.create_task(self._guarded(req, work, instance_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, req: AsyncRequest, work: Any, instance_id: str | None) -> None:
        try:
            await work
        except StorageError as exc:
            log.warning("asynchronous inference %s: %s; trying again in %.0f s", req.inference_id, exc, RETRY_AFTER)
            asyncio.get_running_loop().call_later(RETRY_AFTER, self._enqueue, req)
        except Exception:
            log.exception("asynchronous inference %s failed unexpectedly; trying again in %.0f s",
                          req.inference_id, RETRY_AFTER)
            asyncio.get_running_loop().call_later(RETRY_AFTER, self._enqueue, req)
        finally:
            self._running.pop(req.id, None)
            if instance_id is not None:
                self._inflight[instance_id] -= 1
            if self._wake is not None:
                self._wake.set()

    # --- one request ---------------------------------------------------------------------------

    async def _process(self, req: AsyncRequest, variant: VariantRoute, instance: InstanceRoute) -> None:
        if await self._already_done(req):
            return
        try:
            chunks = await asyncio.to_thread(self._storage.read, req.input_location)
        except StorageError as exc:
            await self._fail(req, f"Failed to read the input {req.input_location}: {exc}")
            return
        headers = {"Content-Type": req.content_type, "Accept": req.accept,
                   "X-Amzn-SageMaker-Custom-Attributes": req.custom_attributes,
                   "X-Amzn-SageMaker-Inference-Id": req.inference_id}
        inv = Invocation(req.endpoint, {k: v for k, v in headers.items() if v is not None}, None, None)
        with tempfile.NamedTemporaryFile(prefix="dockyard-async-") as out:
            try:
                content_type = await asyncio.wait_for(self._invoke(inv, variant, instance, chunks, out), req.timeout)
            except asyncio.TimeoutError:
                await self._fail(req, f"Inference timed out: the container did not answer within the "
                                      f"InvocationTimeoutSeconds of {req.timeout} seconds.")
                return
            except errors.AwsError as exc:
                await self._fail(req, exc.message)
                return
            finally:
                await asyncio.to_thread(_close, chunks)
            await asyncio.to_thread(self._write_once, req.output_location, Path(out.name), content_type)
            config = self._configs.get(req.endpoint.lower())
            body = None
            if config is not None and "SUCCESS_NOTIFICATION_TOPIC" in config.include_response_in:
                body = _small_file(Path(out.name))
        await self._finish(req)
        self._notify(req, content_type, None, body)

    async def _invoke(self, inv: Invocation, variant: VariantRoute, instance: InstanceRoute,
                      chunks: Iterator[bytes], out: IO[bytes]) -> str | None:
        """Send the input to the instance and copy its response into ``out``; its Content-Type."""
        # A small input goes in one piece, with a Content-Length; a large one streams.
        body: Any = await asyncio.to_thread(next, chunks, b"")
        if len(body) < WHOLE_BODY:
            more = await asyncio.to_thread(next, chunks, b"")
            if more:
                body = _Feed([body, more], chunks)
        else:
            body = _Feed([body], chunks)
        result = await self._gateway.invoke_on(inv, variant, instance, body)
        if result.chunks is None:
            await asyncio.to_thread(out.write, result.body)
        else:
            async with aclosing(result.chunks) as stream:
                async for chunk in stream:
                    await asyncio.to_thread(out.write, chunk)
        await asyncio.to_thread(out.flush)
        return result.headers.get("Content-Type")

    async def _already_done(self, req: AsyncRequest) -> bool:
        """A run before a crash wrote the result or the failure: only the record is left to remove."""
        for location in (req.output_location, req.failure_location):
            if await asyncio.to_thread(self._storage.exists, location):
                await self._finish(req)
                return True
        return False

    def _write_once(self, location: str, source: Path, content_type: str | None) -> None:
        if not self._storage.exists(location):
            self._storage.write_file(location, source, content_type)

    async def _fail(self, req: AsyncRequest, reason: str) -> None:
        with tempfile.NamedTemporaryFile(prefix="dockyard-async-") as out:
            out.write(reason.encode())
            out.flush()
            await asyncio.to_thread(self._write_once, req.failure_location, Path(out.name), "text/plain")
        await self._finish(req)
        config = self._configs.get(req.endpoint.lower())
        included = config is not None and "ERROR_NOTIFICATION_TOPIC" in config.include_response_in
        self._notify(req, "text/plain", reason, reason.encode() if included else None)

    async def _finish(self, req: AsyncRequest) -> None:
        await self._store.run(self._store.delete_async_request, req.id)

    def _notify(self, req: AsyncRequest, content_type: str | None, failure: str | None, body: bytes | None) -> None:
        config = self._configs.get(req.endpoint.lower())
        topic = None if config is None else config.success_topic if failure is None else config.error_topic
        if topic is None:
            return
        message = notify.message(req, self._region, time.time(), content_type=content_type, failure=failure, body=body)
        # Fire and forget: the outcome is stored already; publishing failures are logged.
        task = asyncio.create_task(asyncio.to_thread(self._notifier.publish, topic, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Feed:
    """The input object as the upstream client reads a request stream (``iter_any``), each
    chunk read on a thread."""

    def __init__(self, read: list[bytes], rest: Iterator[bytes]) -> None:
        self._read, self._rest = read, rest

    async def iter_any(self) -> Any:
        for chunk in self._read:
            yield chunk
        while chunk := await asyncio.to_thread(next, self._rest, b""):
            yield chunk


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _small_file(path: Path) -> bytes | None:
    return path.read_bytes() if path.stat().st_size <= notify.MAX_INCLUDED_BODY else None

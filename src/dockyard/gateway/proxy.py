"""The data plane: InvokeEndpoint routed to containers, bytes passed through untouched.

Picks a variant (``TargetVariant`` or by weight), an instance (round-robin), then one container
(Single, or Direct by ``TargetContainerHostname``) or every container in order (Serial). Bodies
are never decoded. Containers are reached through ``upstream.Upstream``: keep-alive pools per
container. A container that fails becomes ``ModelError`` (424), which boto3 does not retry.

The answer is an ``InvocationResult`` — status headers and the body, whole or as a stream of
chunks — that ``api/runtime_api.py`` writes; this module never sees the HTTP server.

Failover: an instance whose container refuses a connection (nothing was sent) is taken out of
rotation at once and the request goes to another instance of the variant, once. The mark lasts
until the reconciler publishes the endpoint's route again (it is told, and replaces a dead
instance); while every instance of a variant is marked, all of them are tried as before.

A request whose connection ends before any byte of the response is failed over the same way
when its instance has been withdrawn from the routes as lost (the runtime lost its host: a Ray
node died or went silent; or a dead container found by the periodic check), and answers 503 (boto3 retries it) when no other instance is there or the
body, streamed, cannot be sent again; the model may then have seen the request twice, and
SageMaker makes no at-most-once promise either. When the reconciler withdraws instances as dead
(``EndpointRoute.lost``), the exchanges in flight to them are ended at once (``Upstream.abandon``)
instead of waiting out the invocation timeout. A container that hangs up on a request otherwise —
most often the model's own code ended the process, which the runtime reports as an exit, not a
loss — is the model's failure: ModelError, as SageMaker answers, and the request is not sent
again (it would crash the next instance too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from dockyard import errors
from dockyard.errors import AwsError
from dockyard.gateway import multimodel
from dockyard.gateway.container_call import BodyStream, ContainerCall
from dockyard.gateway.inflight import InFlight, held_until_sent
from dockyard.gateway.invocation import (
    FORWARDED_REQUEST_HEADERS,
    RETURNED_RESPONSE_HEADERS,
    WHOLE_BODY,
    Invocation,
    InvocationResult,
)
from dockyard.gateway.metrics import RequestMetrics
from dockyard.gateway.multimodel import MultiModelRoute, MultiModels
from dockyard.gateway.routing import (
    ContainerRoute,
    EndpointRoute,
    InstanceRoute,
    RoutingTable,
    VariantRoute,
)
from dockyard.gateway.serverless import ServerlessGate, ServerlessMetrics
from dockyard.gateway.upstream import (
    Upstream,
    UpstreamNotSent,
    UpstreamResponse,
    UpstreamUnanswered,
)

if TYPE_CHECKING:
    from aiohttp import StreamReader

_NONE: frozenset[str] = frozenset()


class Gateway:
    """Routes invocations over the current routing table (swapped in by ``publish``)."""

    def __init__(
        self, account_id: str, region: str, invocation_timeout: float, requests: RequestMetrics | None = None,
        serverless: ServerlessMetrics | None = None,
        models: MultiModels | None = None,
    ) -> None:
        self.table: RoutingTable = {}
        # The models of multi-model variants, per instance (None: no multi-model endpoints).
        self.models = models
        self._requests = requests
        # Serverless variants: MaxConcurrency, cold starts, idle time (the reconciler reads it).
        self.serverless = ServerlessGate(serverless or ServerlessMetrics(CollectorRegistry()), invocation_timeout)
        # Why the runtime stopped a container, by its URL (the memory watchdog), for its ModelError.
        self.stopped: dict[str, str] = {}
        self._account_id = account_id
        self._region = region
        self.upstream = Upstream(invocation_timeout)
        # Instances withdrawn as lost while requests were in flight to them (those may be resent).
        self._lost: set[str] = set()
        # Instances out of rotation because they refused a connection, by endpoint (lower case).
        self._refused: dict[str, set[str]] = {}
        # Called when an instance is taken out of rotation (the reconciler's health pass).
        self.on_refused: Callable[[], None] = lambda: None
        # Invocations under way per instance: the reconciler drains an instance before stopping it.
        self.in_flight = InFlight()

    def publish(self, route: EndpointRoute | None, name: str) -> None:
        """Swap in a table where ``name`` routes by ``route`` (or is gone)."""
        key = name.lower()
        table = dict(self.table)
        before = table.get(key)
        # Kept while anything is in flight there: those requests look it up when they fail.
        self._lost = {i for i in self._lost if self.in_flight.count(i)} | (route.lost if route is not None else set())
        if route is not None and route.lost and before is not None:
            # Instances withdrawn as dead: what is in flight to them will never be answered.
            for v in before.variants:
                for i in v.instances:
                    if i.instance_id in route.lost:
                        for c in i.containers:
                            self.upstream.abandon(c.host, c.port)
        if route is None:
            table.pop(key, None)
            if self._requests is not None:
                self._requests.forget(name)
        else:
            table[key] = route
        self.table = table
        if self.models is not None:
            self.models.retain(i.instance_id for r in table.values() for v in r.variants for i in v.instances)
        self.serverless.published(name, route)
        if self.stopped and route is not None:
            # A new container on a stopped one's port is not that container.
            for v in route.variants:
                for i in v.instances:
                    for c in i.containers:
                        self.stopped.pop(c.url, None)
        # A new route is the reconciler's fresh view of the instances: nothing stays marked.
        self._refused.pop(key, None)

    def log_stream_arn(self, endpoint: str) -> str:
        return f"arn:aws:logs:{self._region}:{self._account_id}:log-group:/aws/sagemaker/Endpoints/{endpoint}"

    async def close(self) -> None:
        await self.upstream.close()
        if self.models is not None:
            await self.models.close()

    # --- routing -----------------------------------------------------------------------------

    def _endpoint(self, inv: Invocation) -> EndpointRoute:
        route = self.table.get(inv.endpoint.lower())
        if route is None:
            raise errors.runtime_validation(f"Endpoint {inv.endpoint} of account {self._account_id} not found.")
        return route

    def _variant(self, inv: Invocation, route: EndpointRoute) -> VariantRoute:
        if route.status != "InService" and not route.variants:
            raise errors.runtime_validation(
                f"Endpoint {inv.endpoint} of account {self._account_id} is not in service (status {route.status})."
            )
        if inv.target_variant is not None:
            variant = route.variant(inv.target_variant)
            if variant is None:
                names = ", ".join(v.name for v in route.variants)
                raise errors.runtime_validation(
                    f"Variant {inv.target_variant} not found for endpoint {inv.endpoint}; its variants are: {names}."
                )
            return variant
        variant = route.choose_variant()
        if variant is None:
            raise errors.runtime_validation(
                f"Endpoint {inv.endpoint} has no variant with a traffic weight above 0; "
                "name one with TargetVariant."
            )
        return variant

    def _instance(
        self, inv: Invocation, variant: VariantRoute, avoid: str | None = None, key: str | None = None
    ) -> InstanceRoute | None:
        """The variant's next instance in turn (by ``key``'s preference when given: a model stays
        on one instance), other than ``avoid``, that is in rotation; when every one is out of
        rotation, one of those anyway (better a likely 424 than a certain 503)."""
        refused = self._refused.get(inv.endpoint.lower(), _NONE)
        if key is None and avoid is None and not refused:
            return variant.next_instance()  # the common case, without the search below
        fallback = None
        candidates = variant.ranked(key) if key is not None else (
            variant.next_instance() for _ in range(len(variant.instances)))
        for instance in candidates:
            if instance is None or instance.instance_id == avoid:
                continue
            if instance.instance_id not in refused:
                return instance
            fallback = fallback or instance
        return fallback

    def _containers(self, inv: Invocation, variant: VariantRoute, instance: InstanceRoute) -> tuple[ContainerRoute, ...]:
        if inv.stream and variant.mode == "Serial":
            # SageMaker does not stream from inference pipelines either.
            raise errors.runtime_validation(
                f"Endpoint {inv.endpoint} hosts an inference pipeline (Serial): response streaming is not "
                "supported for inference pipelines; use InvokeEndpoint."
            )
        if variant.mode == "Direct":
            if inv.target_container is None:
                raise errors.runtime_validation(
                    f"Endpoint {inv.endpoint} uses Direct invocation: set TargetContainerHostname to one of "
                    f"{', '.join(variant.hostnames)}."
                )
            container = instance.container(inv.target_container)
            if container is None:
                raise errors.runtime_validation(
                    f"TargetContainerHostname {inv.target_container} is not a container of endpoint "
                    f"{inv.endpoint}; its containers are: {', '.join(variant.hostnames)}."
                )
            return (container,)
        if inv.target_container is not None:
            raise errors.runtime_validation(
                f"TargetContainerHostname is only allowed for endpoints with Direct invocation; endpoint "
                f"{inv.endpoint} uses {'Serial' if variant.mode == 'Serial' else 'a single container'}."
            )
        return instance.containers

    def _take_out(self, endpoint: str, instance: InstanceRoute) -> None:
        self._refused.setdefault(endpoint.lower(), set()).add(instance.instance_id)
        self.on_refused()

    # --- invocation --------------------------------------------------------------------------

    async def invoke(self, inv: Invocation, body: bytes | StreamReader) -> InvocationResult:
        """Answer one invocation; ``body`` is the whole request body, or its stream when large."""
        route = self._endpoint(inv)
        variant: VariantRoute | None = None
        status = 200
        try:
            variant = self._variant(inv, route)
            return await self._on_variant(inv, route, variant, body)
        except AwsError as exc:
            status = exc.status
            raise
        except Exception:
            status = 400  # a bug of ours, answered as InternalFailure
            raise
        finally:
            if self._requests is not None:
                self._requests.observe(route.name, variant.name if variant is not None else "", status)

    async def invoke_on(
        self, inv: Invocation, variant: VariantRoute, instance: InstanceRoute, body: bytes | StreamReader
    ) -> InvocationResult:
        """One invocation on the instance given (asynchronous inference places its requests
        itself, to keep each instance's concurrency within its limit): no failover."""
        try:
            return await self._through(self._endpoint(inv), variant, instance, inv, body)
        except _Refused as refused:
            raise refused.error from None

    async def _on_variant(
        self, inv: Invocation, route: EndpointRoute, variant: VariantRoute, body: bytes | StreamReader
    ) -> InvocationResult:
        if variant.max_concurrency is None:
            return await self._on_instances(inv, route, variant, body)
        # A serverless variant: a slot under MaxConcurrency, then an instance (a cold start when
        # it is scaled to zero). The slot is held until the answer has gone, streamed ones included.
        release = self.serverless.admit(route.name, variant)

        def current() -> VariantRoute | None:
            latest = self.table.get(route.name.lower())
            return latest.variant(variant.name) if latest is not None else None

        async def warm_then_invoke() -> InvocationResult:
            return await self._on_instances(inv, route, await self.serverless.warm(route.name, variant, current), body)

        return await held_until_sent(warm_then_invoke(), release)

    async def _on_instances(
        self, inv: Invocation, route: EndpointRoute, variant: VariantRoute, body: bytes | StreamReader
    ) -> InvocationResult:
        target = self._target_model(inv, variant)
        instance = self._instance(inv, variant, key=target)
        if instance is None:
            raise errors.service_unavailable(
                f"No instance of variant {variant.name} of endpoint {inv.endpoint} is ready yet; retry shortly."
            )
        try:
            return await self._through(route, variant, instance, inv, body)
        except _Refused as refused:
            # The instance refused, or died before answering: another one, once, from the latest
            # routes (which may have withdrawn more instances meanwhile).
            latest = self.table.get(route.name.lower())
            now = latest.variant(variant.name) if latest is not None else None
            other = self._instance(inv, now or variant, avoid=instance.instance_id, key=target)
            if other is None:
                raise refused.error from None
            try:
                return await self._through(route, variant, other, inv, body)
            except _Refused as again:
                raise again.error from None

    def _target_model(self, inv: Invocation, variant: VariantRoute) -> str | None:
        if variant.multi_model is None:
            if inv.target_model is not None:
                raise errors.runtime_validation(
                    f"Endpoint {inv.endpoint} is not a multi-model endpoint: TargetModel is only allowed "
                    "for endpoints whose model has Mode MultiModel."
                )
            return None
        return multimodel.target_model(inv.endpoint, inv.target_model)

    async def _through(
        self, route: EndpointRoute, variant: VariantRoute, instance: InstanceRoute,
        inv: Invocation, body: bytes | StreamReader,
    ) -> InvocationResult:
        """The invocation on one instance, counted in flight there until its answer has gone.
        ``_Refused`` means its first container refused the connection, so nothing was sent and
        the caller may try another instance."""
        return await self.in_flight.holding(instance.instance_id, self._on_instance(route, variant, instance, inv, body))

    async def _on_instance(
        self, route: EndpointRoute, variant: VariantRoute, instance: InstanceRoute,
        inv: Invocation, body: bytes | StreamReader,
    ) -> InvocationResult:
        if variant.multi_model is not None:
            return await self._on_model(route, variant, variant.multi_model, instance, inv, body)
        *serial, last = self._containers(inv, variant, instance)
        headers = _forwarded(inv)
        # Serial: each container's response body and Content-Type are the next one's request.
        for k, container in enumerate(serial):
            call = ContainerCall(self, route.name, container)
            try:
                resp = await self._send(call, inv, instance, headers, body, first=k == 0)
                body = await call.read_all(resp)
            finally:
                call.finish()
            content_type = resp.headers.get("Content-Type")
            if content_type is not None:
                headers["Content-Type"] = content_type
            else:
                headers.pop("Content-Type", None)
        return await self._last(ContainerCall(self, route.name, last), variant, instance, inv, headers, body,
                                first=not serial)

    async def _on_model(
        self, route: EndpointRoute, variant: VariantRoute, mm: MultiModelRoute, instance: InstanceRoute,
        inv: Invocation, body: bytes | StreamReader,
    ) -> InvocationResult:
        """An invocation of one model of a multi-model instance: loaded first if need be."""
        assert self.models is not None, "a multi-model route needs the gateway's MultiModels"
        container = instance.containers[0]
        target = multimodel.target_model(inv.endpoint, inv.target_model)
        start = time.perf_counter()
        failed, name = True, None
        try:
            name = await self.models.model_for(mm, route.name, instance.instance_id, container.url, target)
            call = ContainerCall(self, route.name, container, f"/models/{name}/invoke")
            result = await self._last(call, variant, instance, inv, _forwarded(inv), body, first=True)
            failed = False
            return result
        except multimodel.LoadFailed as exc:
            if exc.gone:
                # The container died loading the model (its code ended the process): out of
                # rotation, and the reconciler is asked to look, as for a refused connection.
                self._take_out(inv.endpoint, instance)
            # A container the memory watchdog stopped mid-load: its reason, not "could not be reached".
            message = self.stopped.get(container.url) if exc.status == 0 else None
            raise self.model_error(
                route.name, container.hostname, exc.status, message or f"Failed to load model {target}: {exc.message}"
            ) from None
        except AwsError as exc:
            if name is not None and exc.code == "ModelError" and exc.extra.get("OriginalStatusCode") == 404:
                # The contract's "not loaded": the container lost the model (restarted in place, or
                # dropped it); without this every later invocation would answer the same 404.
                self.models.forget(instance.instance_id, target)
            raise
        finally:
            self.models.observe(route.name, target, time.perf_counter() - start, failed)
            if name is not None:
                # ModelCacheSetting Disabled: each model serves one invocation, then goes.
                self.models.done(instance.instance_id, container.url, target, unload=not mm.cache_enabled)

    async def _last(
        self, call: ContainerCall, variant: VariantRoute, instance: InstanceRoute, inv: Invocation,
        headers: dict[str, str], body: bytes | StreamReader, first: bool,
    ) -> InvocationResult:
        """The call whose answer goes back to the client: whole, or as a stream of chunks."""
        streaming = False
        try:
            resp = await self._send(call, inv, instance, headers, body, first=first)
            out = {k: v for k in RETURNED_RESPONSE_HEADERS if (v := resp.headers.get(k)) is not None}
            out["x-Amzn-Invoked-Production-Variant"] = variant.name
            length = resp.content_length
            if length is not None and length <= WHOLE_BODY and not inv.stream:
                return InvocationResult(out, body=await call.read_all(resp))
            streaming = True  # from here on the stream finishes the call
            # A streamed invocation keeps the container's chunks apart: each becomes an event.
            chunks = resp.iter_pieces() if inv.stream else resp.iter_chunks()
            return InvocationResult(out, chunks=BodyStream(call, chunks), content_length=length)
        finally:
            if not streaming:
                call.finish()

    async def _send(
        self, call: ContainerCall, inv: Invocation, instance: InstanceRoute,
        headers: dict[str, str], body: bytes | StreamReader, first: bool,
    ) -> UpstreamResponse:
        try:
            return await call.start(headers, body)
        except UpstreamNotSent as exc:
            # An instance that refuses connections is out of rotation at once.
            self._take_out(inv.endpoint, instance)
            if first:
                raise _Refused(call.as_model_error(exc)) from None
            raise call.as_model_error(exc) from None
        except UpstreamUnanswered as exc:
            if instance.instance_id not in self._lost:
                raise call.as_model_error(exc) from None
            self._take_out(inv.endpoint, instance)
            gone = errors.service_unavailable(
                f"Instance {instance.instance_id} of endpoint {inv.endpoint} went away before its container "
                f"{call.container.hostname} answered, and no other instance could take the request; retry shortly."
            )
            if first and isinstance(body, (bytes, bytearray)):
                raise _Refused(gone) from None
            raise gone from None

    def model_error(self, endpoint: str, container: str, status: int, message: str) -> AwsError:
        kind = "client" if 400 <= status < 500 else "server"
        arn = self.log_stream_arn(endpoint)
        return errors.model_error(
            f'Received {kind} error ({status}) from {container} with message "{message}". '
            f"See {arn} for more information.",
            status,
            message,
            arn,
        )


def _forwarded(inv: Invocation) -> dict[str, str]:
    return {k: v for k in FORWARDED_REQUEST_HEADERS if (v := inv.headers.get(k)) is not None}


class _Refused(Exception):
    """The first container of an instance refused the connection (nothing was sent), or the
    instance died before answering a request whose body can be sent again: another may take it."""

    def __init__(self, error: AwsError) -> None:
        super().__init__(error.message)
        self.error = error

"""The data plane: InvokeEndpoint routed to containers, bytes passed through untouched.

Picks a variant (``TargetVariant`` or by weight), an instance (round-robin), then one container
(Single, or Direct by ``TargetContainerHostname``) or every container in order (Serial). Bodies
are never decoded. Containers are reached through ``upstream.Upstream``: keep-alive pools per
container. A container that fails becomes ``ModelError`` (424), which boto3 does not retry.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Mapping

import aiohttp
from aiohttp import web

from dockyard.api import errors
from dockyard.gateway.routing import ContainerRoute, EndpointRoute, RoutingTable, VariantRoute
from dockyard.gateway.upstream import Upstream, UpstreamError, UpstreamResponse

# Request headers of the InvokeEndpoint API that containers receive (SageMaker strips the rest).
FORWARDED_REQUEST_HEADERS = (
    "Content-Type",
    "Accept",
    "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-Target-Model",
    "X-Amzn-SageMaker-Inference-Id",
    "X-Amzn-SageMaker-Session-Id",
    "X-Amzn-SageMaker-Enable-Explanations",
)
# Container response headers the InvokeEndpoint API returns to the client.
RETURNED_RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-New-Session-Id",
    "X-Amzn-SageMaker-Closed-Session-Id",
)
# Bodies up to this size are read in one piece; larger ones stream chunk by chunk.
WHOLE_BODY = 256 * 1024
# Set on a request once its response has started streaming: an error after that cannot become an
# error response any more.
STREAMING = "dockyard.streaming"
_ORIGINAL_MESSAGE_LIMIT = 4096


@dataclass(frozen=True)
class Invocation:
    """What one InvokeEndpoint asks for, read from its headers by the API layer."""

    endpoint: str
    headers: Mapping[str, str]
    target_variant: str | None
    target_container: str | None


class Gateway:
    def __init__(self, account_id: str, region: str, invocation_timeout: float) -> None:
        self.table: RoutingTable = {}
        self._account_id = account_id
        self._region = region
        self._upstream = Upstream(invocation_timeout)

    def publish(self, route: EndpointRoute | None, name: str) -> None:
        """Swap in a table where ``name`` routes by ``route`` (or is gone)."""
        table = dict(self.table)
        if route is None:
            table.pop(name.lower(), None)
        else:
            table[name.lower()] = route
        self.table = table

    def log_stream_arn(self, endpoint: str) -> str:
        return f"arn:aws:logs:{self._region}:{self._account_id}:log-group:/aws/sagemaker/Endpoints/{endpoint}"

    async def close(self) -> None:
        await self._upstream.close()

    # --- routing -----------------------------------------------------------------------------

    def _route(self, inv: Invocation) -> tuple[EndpointRoute, VariantRoute]:
        route = self.table.get(inv.endpoint.lower())
        if route is None:
            raise errors.runtime_validation(f"Endpoint {inv.endpoint} of account {self._account_id} not found.")
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
        else:
            variant = route.choose_variant()
            if variant is None:
                raise errors.runtime_validation(
                    f"Endpoint {inv.endpoint} has no variant with a traffic weight above 0; "
                    "name one with TargetVariant."
                )
        return route, variant

    def _containers(self, inv: Invocation, variant: VariantRoute) -> tuple[ContainerRoute, ...]:
        instance = variant.next_instance()
        if instance is None:
            raise errors.service_unavailable(
                f"No instance of variant {variant.name} of endpoint {inv.endpoint} is ready yet; retry shortly."
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

    # --- invocation --------------------------------------------------------------------------

    async def invoke(
        self, inv: Invocation, body: "bytes | aiohttp.StreamReader", request: web.Request
    ) -> web.StreamResponse:
        """Answer one invocation; ``body`` is the whole request body, or its stream when large."""
        route, variant = self._route(inv)
        containers = self._containers(inv, variant)
        headers = {k: v for k in FORWARDED_REQUEST_HEADERS if (v := inv.headers.get(k)) is not None}
        # Serial: each container's response body and Content-Type are the next one's request.
        for container in containers[:-1]:
            async with self._call(route, variant, container, headers, body) as resp:
                body = await resp.read()
                content_type = resp.headers.get("Content-Type")
                if content_type is not None:
                    headers["Content-Type"] = content_type
                else:
                    headers.pop("Content-Type", None)
        async with self._call(route, variant, containers[-1], headers, body) as resp:
            return await self._relay(resp, request, variant.name)

    def _call(
        self, route: EndpointRoute, variant: VariantRoute, container: ContainerRoute,
        headers: dict[str, str], body: "bytes | aiohttp.StreamReader",
    ) -> "_ContainerCall":
        return _ContainerCall(self, route, variant, container, headers, body)

    async def _relay(self, resp: UpstreamResponse, request: web.Request, variant: str) -> web.StreamResponse:
        out_headers = {k: v for k in RETURNED_RESPONSE_HEADERS if (v := resp.headers.get(k)) is not None}
        out_headers["x-Amzn-Invoked-Production-Variant"] = variant
        # A random version-4 UUID without uuid4()'s os.urandom call: it names a request, it is no secret.
        out_headers["x-amzn-RequestId"] = str(uuid.UUID(int=random.getrandbits(128), version=4))
        length = resp.content_length
        if length is not None and length <= WHOLE_BODY:
            return web.Response(body=await resp.read(), headers=out_headers)
        out = web.StreamResponse(headers=out_headers)
        if length is not None:
            out.content_length = length
        request[STREAMING] = True
        await out.prepare(request)
        async for chunk in resp.iter_chunks():
            await out.write(chunk)
        await out.write_eof()
        return out

    def model_error(self, endpoint: str, container: str, status: int, message: str) -> errors.ApiError:
        kind = "client" if 400 <= status < 500 else "server"
        arn = self.log_stream_arn(endpoint)
        return errors.model_error(
            f'Received {kind} error ({status}) from {container} with message "{message}". '
            f"See {arn} for more information.",
            status,
            message,
            arn,
        )


class _ContainerCall:
    """One request to one container, as an async context manager that maps every failure of
    the container to ModelError and records the container's metrics."""

    def __init__(
        self, gateway: Gateway, route: EndpointRoute, variant: VariantRoute, container: ContainerRoute,
        headers: dict[str, str], body: "bytes | aiohttp.StreamReader",
    ) -> None:
        self._gw, self._route, self._container = gateway, route, container
        self._headers, self._body = headers, body
        self._resp: UpstreamResponse | None = None
        self._start = 0.0

    async def __aenter__(self) -> UpstreamResponse:
        gw, c = self._gw, self._container
        c.metrics.invocations.inc()
        self._start = time.perf_counter()
        try:
            resp = await gw._upstream.post(c.host, c.port, "/invocations", self._headers.items(), self._body)
            if resp.status >= 300:
                text = (await resp.read_at_most(_ORIGINAL_MESSAGE_LIMIT)).decode("utf-8", "replace")
                resp.release()
                raise gw.model_error(self._route.name, c.hostname, resp.status, text)
        except (asyncio.TimeoutError, UpstreamError, errors.ApiError) as exc:
            self._failed()
            raise self._as_model_error(exc) from None
        self._resp = resp
        return resp

    def _as_model_error(self, exc: BaseException) -> BaseException:
        """The ModelError a failure of the container becomes (an ApiError stays as it is)."""
        if isinstance(exc, asyncio.TimeoutError):
            return self._gw.model_error(
                self._route.name, self._container.hostname, 0,
                f"Your invocation timed out while waiting for a response from container "
                f"{self._container.hostname}. Review the latency metrics for each container, resolve "
                "the issue, and try again.",
            )
        if isinstance(exc, UpstreamError):
            return self._gw.model_error(
                self._route.name, self._container.hostname, 0, f"the container could not be reached: {exc}"
            )
        return exc

    def _failed(self) -> None:
        self._container.metrics.errors.inc()
        self._container.metrics.latency.observe(time.perf_counter() - self._start)

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._resp is not None:
            self._resp.release()
        if isinstance(exc, (asyncio.TimeoutError, UpstreamError)):
            # The container failed while its body was being read (it died, or was too slow).
            self._failed()
            raise self._as_model_error(exc) from None
        self._container.metrics.latency.observe(time.perf_counter() - self._start)

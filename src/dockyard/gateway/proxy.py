"""The data plane: InvokeEndpoint routed to containers, bytes passed through untouched.

Picks a variant (``TargetVariant`` or by weight), an instance (round-robin), then one container
(Single, or Direct by ``TargetContainerHostname``) or every container in order (Serial). Bodies
are never decoded. Keep-alive pools per container come from one shared client session.
A container that fails becomes ``ModelError`` (424), which boto3 does not retry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from dockyard.api import errors
from dockyard.gateway.routing import ContainerRoute, EndpointRoute, RoutingTable, VariantRoute

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
# Headers of ours that the container must not set for us: aiohttp adds these by default.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
# Bodies up to this size are read in one piece; larger ones stream chunk by chunk.
WHOLE_BODY = 256 * 1024
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
        self._timeout = aiohttp.ClientTimeout(total=invocation_timeout)
        self._session: aiohttp.ClientSession | None = None

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
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                auto_decompress=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        return self._session

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
        headers = CIMultiDict((k, v) for k in FORWARDED_REQUEST_HEADERS if (v := inv.headers.get(k)) is not None)
        # Serial: each container's response body and Content-Type are the next one's request.
        for container in containers[:-1]:
            async with self._call(route, variant, container, headers, body) as resp:
                body = await resp.read()
                if "Content-Type" in resp.headers:
                    headers["Content-Type"] = resp.headers["Content-Type"]
                else:
                    headers.pop("Content-Type", None)
        async with self._call(route, variant, containers[-1], headers, body) as resp:
            return await self._relay(resp, request, variant.name)

    def _call(
        self, route: EndpointRoute, variant: VariantRoute, container: ContainerRoute,
        headers: CIMultiDict[str], body: "bytes | aiohttp.StreamReader",
    ) -> "_ContainerCall":
        return _ContainerCall(self, route, variant, container, headers, body)

    async def _relay(self, resp: aiohttp.ClientResponse, request: web.Request, variant: str) -> web.StreamResponse:
        out_headers = {k: v for k in RETURNED_RESPONSE_HEADERS if (v := resp.headers.get(k)) is not None}
        out_headers["x-Amzn-Invoked-Production-Variant"] = variant
        out_headers["x-amzn-RequestId"] = str(uuid.uuid4())
        length = resp.content_length
        if length is not None and length <= WHOLE_BODY:
            return web.Response(body=await resp.read(), headers=out_headers)
        out = web.StreamResponse(headers=out_headers)
        if length is not None:
            out.content_length = length
        await out.prepare(request)
        async for chunk in resp.content.iter_any():
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
        headers: CIMultiDict[str], body: "bytes | aiohttp.StreamReader",
    ) -> None:
        self._gw, self._route, self._container = gateway, route, container
        self._headers, self._body = headers, body
        self._resp: aiohttp.ClientResponse | None = None
        self._start = 0.0

    async def __aenter__(self) -> aiohttp.ClientResponse:
        gw, c = self._gw, self._container
        c.metrics.invocations.inc()
        self._start = time.perf_counter()
        try:
            self._resp = await gw._http().post(
                c.invocations_url, data=self._body, headers=self._headers, timeout=gw._timeout
            )
            if self._resp.status >= 300:
                text = (await self._resp.content.read(_ORIGINAL_MESSAGE_LIMIT)).decode("utf-8", "replace")
                self._resp.release()
                raise gw.model_error(self._route.name, c.hostname, self._resp.status, text)
        except asyncio.TimeoutError:
            self._failed()
            raise gw.model_error(
                self._route.name, c.hostname, 0,
                f"Your invocation timed out while waiting for a response from container {c.hostname}. "
                "Review the latency metrics for each container, resolve the issue, and try again.",
            ) from None
        except aiohttp.ClientError as exc:
            self._failed()
            raise gw.model_error(self._route.name, c.hostname, 0, f"the container could not be reached: {exc}") from None
        except errors.ApiError:
            self._failed()
            raise
        return self._resp

    def _failed(self) -> None:
        self._container.metrics.errors.inc()
        self._container.metrics.latency.observe(time.perf_counter() - self._start)

    async def __aexit__(self, *_: object) -> None:
        self._container.metrics.latency.observe(time.perf_counter() - self._start)
        if self._resp is not None:
            self._resp.release()

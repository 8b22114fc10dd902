"""What the console shows, as JSON-ready dicts: endpoints with their variants, the models and
endpoint configs behind them (environment values masked), and the running instances.

Inputs are the control plane's endpoint records (desired state), the gateway's routing table
(what is ready to serve) and the reconciler's running instances; nothing here does I/O beyond
looking for a ``requirements.txt`` once per container.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dockyard.control.plans import Deployment, VariantPlan
from dockyard.control.store import Endpoint
from dockyard.gateway.routing import EndpointRoute, RoutingTable
from dockyard.images import catalogue
from dockyard.runtime.base import ContainerSpec, RunningInstance
from dockyard.runtime.layers import requirement_files

MASK = "********"


def endpoint_list(endpoints: list[Endpoint], table: RoutingTable) -> list[dict[str, Any]]:
    """Every endpoint, newest first, with desired and ready instance counts per variant."""
    return [endpoint_summary(ep, table.get(ep.name.lower())) for ep in sorted(endpoints, key=lambda e: -e.creation_time)]


def endpoint_summary(ep: Endpoint, route: EndpointRoute | None) -> dict[str, Any]:
    ready = {v.name: len(v.instances) for v in route.variants} if route is not None else {}
    pending = {p.name: p for p in ep.pending.plans} if ep.pending is not None else {}
    return {
        "name": ep.name,
        "arn": ep.arn,
        "status": ep.status.value,
        "failureReason": ep.failure_reason,
        "configName": ep.config_name,
        "pendingConfigName": ep.pending.config_name if ep.pending is not None else None,
        "created": ep.creation_time,
        "lastModified": ep.last_modified,
        "variants": [_variant(plan, ready.get(plan.name, 0), pending.get(plan.name)) for plan in ep.deployment.plans],
    }


def _variant(plan: VariantPlan, ready: int, pending: VariantPlan | None) -> dict[str, Any]:
    return {
        "name": plan.name,
        "model": plan.model_name,
        "instanceType": plan.instance_type,
        "mode": plan.mode,
        "weight": plan.weight,
        "desiredInstances": plan.instance_count,
        "currentInstances": ready,
        "pendingWeight": pending.weight if pending is not None else None,
        "pendingInstances": pending.instance_count if pending is not None else None,
        "containers": [c.hostname for c in plan.containers],
    }


def deployment_details(ep: Endpoint) -> dict[str, Any]:
    """The endpoint config and models the endpoint runs (and is moving to), secrets masked."""

    def snapshot(deployment: Deployment) -> dict[str, Any]:
        return {
            "endpointConfigName": deployment.config_name,
            "endpointConfig": deployment.config,
            "models": {name: masked_model(spec) for name, spec in deployment.models.items()},
        }

    return {
        "name": ep.name,
        "deployment": snapshot(ep.deployment),
        "pending": snapshot(ep.pending) if ep.pending is not None else None,
    }


def masked_model(spec: dict[str, Any]) -> dict[str, Any]:
    """A CreateModel spec with every container's Environment values masked: they often hold
    credentials. Keys stay visible; so do URLs, less any query string (a presigned URL's
    signature is a credential too)."""
    out = dict(spec)
    if "PrimaryContainer" in out:
        out["PrimaryContainer"] = _masked_container(out["PrimaryContainer"])
    if "Containers" in out:
        out["Containers"] = [_masked_container(c) for c in out["Containers"]]
    return out


def _masked_container(definition: dict[str, Any]) -> dict[str, Any]:
    out = dict(definition)
    if "Environment" in out:
        out["Environment"] = {key: MASK for key in out["Environment"]}
    if "ModelDataUrl" in out:
        out["ModelDataUrl"] = _without_query(out["ModelDataUrl"])
    return out


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=MASK)) if parts.query else url


def strategy(container: ContainerSpec) -> str:
    """managed (a managed image as is), extend (a managed image plus a requirements.txt) or byoc."""
    if catalogue.resolve(container.image) is None:
        return "byoc"
    return "extend" if requirement_files(container.code_dir, container.model_dir) else "managed"


class InstanceViews:
    """The running instances of an endpoint and each container's health. A container's
    strategy is looked up once per instance (it reads the file system), then remembered."""

    def __init__(self, runtime: str, dead_containers: Callable[[RunningInstance], list[str]]) -> None:
        self._runtime = runtime
        self._dead = dead_containers
        self._strategies: dict[str, dict[str, str]] = {}

    def view(self, instances: list[RunningInstance], route: EndpointRoute | None) -> list[dict[str, Any]]:
        routed = {i.instance_id for v in route.variants for i in v.instances} if route is not None else set()
        return [self._instance(i, i.spec.instance_id in routed) for i in instances]

    def _instance(self, instance: RunningInstance, routed: bool) -> dict[str, Any]:
        spec = instance.spec
        if spec.instance_id not in self._strategies:
            self._strategies[spec.instance_id] = {c.hostname: strategy(c) for c in spec.containers}
        strategies = self._strategies[spec.instance_id]
        dead = set(self._dead(instance))
        images = {c.hostname: c.image for c in spec.containers}
        return {
            "id": spec.instance_id,
            "variant": spec.variant,
            "instanceType": spec.instance_type,
            "runtime": self._runtime,
            "containers": [
                {
                    "hostname": c.hostname,
                    "image": images.get(c.hostname, ""),
                    "strategy": strategies.get(c.hostname, "byoc"),
                    "health": "exited" if c.hostname in dead else ("serving" if routed else "starting"),
                }
                for c in instance.containers
            ],
        }

    def forget(self, alive: set[str]) -> None:
        """Drop what is remembered of instances that are no longer running."""
        for instance_id in set(self._strategies) - alive:
            del self._strategies[instance_id]

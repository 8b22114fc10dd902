"""Scale to zero: which serverless variants the reconciler stops for being idle, and which stay cold.

A serverless variant without ``ProvisionedConcurrency`` that has had nothing in flight for
``idle_after`` seconds (the gateway keeps that count, in memory: ``idle_seconds``) is *cold*: its
instance stops and healing wants none of it, until a request asks for one (``wake``, the
gateway's cold start). A variant with ``ProvisionedConcurrency`` always stays warm. A create or an
update starts every variant again, so nothing stays cold across them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dockyard.control.plans import VariantPlan

# (endpoint, variant) → seconds with nothing in flight, or None (busy, cold or unknown).
IdleSeconds = Callable[[str, str], float | None]


class IdleScaler:
    def __init__(self, idle_seconds: IdleSeconds, idle_after: float) -> None:
        self._idle_seconds = idle_seconds
        self._idle_after = idle_after
        # Cold variants by endpoint (lower-cased name).
        self._cold: dict[str, set[str]] = {}

    def wanted(self, key: str, plan: VariantPlan) -> int:
        """How many instances of ``plan`` should run now: none while the variant is cold."""
        return 0 if plan.name in self._cold.get(key, ()) else plan.instance_count

    def idle_variants(self, endpoint: str, variants: Iterable[tuple[VariantPlan, int]]) -> list[str]:
        """Of ``variants`` (plan, instances running), the serverless ones to scale to zero now."""
        idle = []
        for plan, running in variants:
            if plan.serverless is None or plan.serverless.provisioned_concurrency or not running:
                continue
            seconds = self._idle_seconds(endpoint, plan.name)
            if seconds is not None and seconds >= self._idle_after:
                idle.append(plan.name)
        return idle

    def cooled(self, key: str, variant: str) -> None:
        self._cold.setdefault(key, set()).add(variant)

    def wake(self, key: str, variant: str) -> bool:
        """The variant is wanted again; whether it was cold."""
        cold = self._cold.get(key, set())
        if variant not in cold:
            return False
        cold.discard(variant)
        return True

    def forget(self, key: str) -> None:
        self._cold.pop(key, None)

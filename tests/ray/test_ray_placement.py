"""How an instance type becomes a Ray placement group bundle (no cluster needed)."""

from __future__ import annotations

import pytest
from needs import require_ray

pytestmark = pytest.mark.ray
require_ray()

from dockyard.runtime.ray import bundle_for, describe, instance_family  # noqa: E402  (needs ray)

GIB = 1024**3


def test_an_instance_takes_its_type_s_cpus_and_memory() -> None:
    assert bundle_for("ml.m5.large", {"CPU": 8.0}) == {"CPU": 2.0, "memory": 8.0 * GIB}
    assert bundle_for("ml.c5.9xlarge", {}) == {"CPU": 36.0, "memory": 72.0 * GIB}


def test_a_family_some_node_offers_is_required_as_a_resource() -> None:
    assert instance_family("ml.m5.large") == "ml.m5"
    assert instance_family("ml.p6-b200.48xlarge") == "ml.p6-b200"
    assert bundle_for("ml.m5.large", {"CPU": 8.0, "ml.m5": 2.0}) == {"CPU": 2.0, "memory": 8.0 * GIB, "ml.m5": 1.0}
    # Another family's resource pins nothing of this one.
    assert "ml.c5" not in bundle_for("ml.m5.large", {"ml.c5": 2.0})


def test_a_type_without_a_size_still_takes_a_cpu() -> None:
    assert instance_family("ml.serverless-2048mb") is None
    assert bundle_for("local", {}) == {"CPU": 1.0}
    assert describe({"CPU": 2.0, "memory": 8.0 * GIB, "ml.m5": 1.0}) == "2 CPUs, 8 GiB of memory, resource ml.m5"

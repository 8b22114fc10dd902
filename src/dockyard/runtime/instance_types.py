"""SageMaker instance types as CPU and memory: what the docker runtime limits an instance to.

Most ``ml.<family>.<size>`` types follow EC2's regular shape: ``large`` has 2 vCPUs, ``xlarge``
4, ``Nxlarge`` 4·N, ``medium`` 1, and a family has a fixed amount of memory per vCPU (2 GiB for
compute-optimised ``c``, 4 for general-purpose ``m``, 8 for memory-optimised ``r``, …). The types
that break the rule (older generations, accelerated instances) are listed with their real sizes.
A family dockyard does not list (botocore adds some every few months, e.g. ``ml.g7``) is sized by
its class letters — the part before the generation digit — with the memory per vCPU its listed
siblings have, and a logged note that the size is assumed. A type matching neither has no size:
the runtime runs it without limits and logs that. GPUs and other accelerators are not emulated —
only CPUs and memory are.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True)
class Resources:
    vcpus: float
    memory_gib: float

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)


# GiB of memory per vCPU, by family, for the types of regular shape.
_GIB_PER_VCPU: dict[str, float] = {
    **dict.fromkeys(("c5", "c5d", "c6i", "c6in", "c7i", "c6g", "c6gd", "c6gn", "c7g", "c8g", "inf1"), 2.0),
    **dict.fromkeys(("m4", "m5", "m5d", "m6i", "m7i", "m6g", "m6gd", "m8g", "t2", "g4dn", "g5", "g6", "inf2", "trn1",
                     "trn1n"), 4.0),
    **dict.fromkeys(("r5", "r5d", "r6i", "r7i", "r6g", "r6gd", "r7gd", "r8g", "g6e", "g7e", "dl1"), 8.0),
    **dict.fromkeys(("p4d", "p4de"), 12.0),
}

# GiB of memory per vCPU by class (the family's letters before its generation), for families not
# listed above: the value most listed families of that class have.
_CLASS_GIB_PER_VCPU: dict[str, float] = {"c": 2.0, "m": 4.0, "t": 4.0, "g": 4.0, "inf": 2.0, "trn": 4.0, "r": 8.0,
                                          "x": 16.0, "z": 8.0}
_FAMILY = re.compile(r"(?P<cls>[a-z]+)\d")

# Types whose vCPUs or memory do not follow their family's rule (EC2's published sizes).
_IRREGULAR: dict[str, Resources] = {
    "ml.t2.medium": Resources(2, 4),
    "ml.c4.large": Resources(2, 3.75),
    "ml.c4.xlarge": Resources(4, 7.5),
    "ml.c4.2xlarge": Resources(8, 15),
    "ml.c4.4xlarge": Resources(16, 30),
    "ml.c4.8xlarge": Resources(36, 60),
    "ml.p2.xlarge": Resources(4, 61),
    "ml.p2.8xlarge": Resources(32, 488),
    "ml.p2.16xlarge": Resources(64, 732),
    "ml.p3.2xlarge": Resources(8, 61),
    "ml.p3.8xlarge": Resources(32, 244),
    "ml.p3.16xlarge": Resources(64, 488),
    "ml.inf1.6xlarge": Resources(24, 48),
    "ml.trn2.48xlarge": Resources(192, 2048),
    "ml.p5.4xlarge": Resources(16, 256),
    "ml.p5.48xlarge": Resources(192, 2048),
    "ml.p5e.48xlarge": Resources(192, 2048),
    "ml.p5en.48xlarge": Resources(192, 2048),
    "ml.p6-b200.48xlarge": Resources(192, 2048),
    "ml.p6-b300.48xlarge": Resources(192, 4096),
    "ml.p6e-gb200.36xlarge": Resources(144, 960),
}

# A serverless variant's instance: dockyard's own name carrying its MemorySizeInMB (SageMaker has no
# instance type for it). Its vCPUs grow with memory as on SageMaker: one per 2 GiB, at least one.
_SERVERLESS = re.compile(r"ml\.serverless-(?P<mb>\d+)mb")


def serverless_instance_type(memory_mb: int) -> str:
    return f"ml.serverless-{memory_mb}mb"


def serverless_memory_bytes(instance_type: str) -> int | None:
    """The memory limit of a serverless instance type; None for any other type."""
    match = _SERVERLESS.fullmatch(instance_type)
    return int(match["mb"]) * 1024**2 if match else None


_TYPE = re.compile(r"ml\.(?P<family>[a-z0-9-]+)\.(?P<size>medium|large|xlarge|(?P<n>\d+)xlarge)")


def _vcpus(size: str, n: str | None) -> int:
    if size == "medium":
        return 1
    if size == "large":
        return 2
    return 4 * int(n or 1)


def _gib_per_vcpu(family: str) -> float | None:
    if family in _GIB_PER_VCPU:
        return _GIB_PER_VCPU[family]
    cls = _FAMILY.match(family)
    if cls is None or cls["cls"] not in _CLASS_GIB_PER_VCPU:
        return None
    per_vcpu = _CLASS_GIB_PER_VCPU[cls["cls"]]
    log.info("instance family %s is not in dockyard's table: assuming %g GiB of memory per vCPU, as other "
             "%s-class families have", family, per_vcpu, cls["cls"])
    return per_vcpu


@functools.cache
def resources_for(instance_type: str) -> Resources | None:
    """The vCPUs and memory of ``instance_type``, or None for a type dockyard cannot size."""
    if instance_type in _IRREGULAR:
        return _IRREGULAR[instance_type]
    if (memory := serverless_memory_bytes(instance_type)) is not None:
        return Resources(max(1, memory // (2 * GIB)), memory / GIB)
    match = _TYPE.fullmatch(instance_type)
    per_vcpu = _gib_per_vcpu(match["family"]) if match else None
    if match is None or per_vcpu is None:
        return None
    vcpus = _vcpus(match["size"], match["n"])
    return Resources(vcpus, vcpus * per_vcpu)

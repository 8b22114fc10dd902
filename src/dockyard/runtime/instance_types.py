"""SageMaker instance types as CPU and memory: what the docker runtime limits an instance to.

Most ``ml.<family>.<size>`` types follow EC2's regular shape: ``large`` has 2 vCPUs, ``xlarge``
4, ``Nxlarge`` 4·N, ``medium`` 1, and a family has a fixed amount of memory per vCPU (2 GiB for
compute-optimised ``c``, 4 for general-purpose ``m``, 8 for memory-optimised ``r``, …). The types
that break the rule (older generations, accelerated instances) are listed with their real sizes.
Together they cover every value of botocore's ``ProductionVariantInstanceType`` enum (a test
checks that); GPUs and other accelerators are not emulated — only CPUs and memory are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

_TYPE = re.compile(r"ml\.(?P<family>[a-z0-9-]+)\.(?P<size>medium|large|xlarge|(?P<n>\d+)xlarge)")


def _vcpus(size: str, n: str | None) -> int:
    if size == "medium":
        return 1
    if size == "large":
        return 2
    return 4 * int(n or 1)


def resources_for(instance_type: str) -> Resources | None:
    """The vCPUs and memory of ``instance_type``, or None for a type dockyard does not know."""
    if instance_type in _IRREGULAR:
        return _IRREGULAR[instance_type]
    match = _TYPE.fullmatch(instance_type)
    if match is None or match["family"] not in _GIB_PER_VCPU:
        return None
    vcpus = _vcpus(match["size"], match["n"])
    return Resources(vcpus, vcpus * _GIB_PER_VCPU[match["family"]])

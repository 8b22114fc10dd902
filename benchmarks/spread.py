"""Median and range over repeated runs: every figure in the report is a ``Spread``."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.load import Sample


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        data = sorted(values)
        if not data:
            raise ValueError("no values")
        return cls(statistics.median(data), data[0], data[-1])

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high}

    def text(self, digits: int = 2) -> str:
        """``0.41 (0.38–0.47)``; one value alone when there was one run."""
        if self.low == self.high:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"


def paired(a: list[float], b: list[float]) -> Spread:
    """The spread of ``a[i] - b[i]``: runs of the same repeat were measured back to back."""
    return Spread.of(x - y for x, y in zip(a, b, strict=True))


def ratios(a: list[float], b: list[float]) -> Spread:
    return Spread.of(x / y for x, y in zip(a, b, strict=True) if y)


def summary(samples: list[Sample]) -> dict[str, Spread]:
    """p50, p99 (ms), requests per second and, when recorded, CPU µs per request of one target's runs."""
    out = {
        "p50_ms": Spread.of(s.p50_ms for s in samples),
        "p99_ms": Spread.of(s.p99_ms for s in samples),
        "rps": Spread.of(s.rps for s in samples),
    }
    if all(s.cpu_us is not None for s in samples):
        out["cpu_us_per_request"] = Spread.of(s.cpu_us for s in samples)
    return out


def to_json(value: object) -> object:
    """Spreads (nested in dicts and lists) as plain JSON values."""
    if isinstance(value, Spread):
        return value.as_dict()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value

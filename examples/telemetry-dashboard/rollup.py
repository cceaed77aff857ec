"""Rolling telemetry up into per-window aggregates that can be updated a batch at a time:
count, sum, min, max, and a log-bucketed histogram for percentiles (mergeable and bounded, as
the sketches of metrics systems are: DDSketch-style buckets with 1% relative accuracy).
"""

from __future__ import annotations

import math
from typing import Any

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
"""Bucket i holds (GAMMA**(i-1), GAMMA**i]: any value in it is within 1% of its midpoint."""


def bucket_of(value: float) -> str:
    """The histogram key of `value`: `z` for zero, `+i` / `-i` for a positive / negative one."""
    if value == 0:
        return "z"
    index = math.ceil(math.log(abs(value), GAMMA))
    return f"{'+' if value > 0 else '-'}{index}"


def representative(key: str) -> float:
    """The value a bucket stands for: within ACCURACY of every value in it."""
    if key == "z":
        return 0.0
    magnitude = 2 * GAMMA ** int(key[1:]) / (GAMMA + 1)
    return magnitude if key[0] == "+" else -magnitude


def empty(metric: str, window: int, seconds: int) -> dict[str, Any]:
    return {
        "metric": metric, "window": window, "seconds": seconds, "count": 0, "sum": 0.0,
        "min": None, "max": None, "histogram": {}, "sources": [], "applied": {},
    }  # fmt: skip


def add(aggregate: dict[str, Any], value: float, source: str) -> None:
    aggregate["count"] += 1
    aggregate["sum"] += value
    aggregate["min"] = value if aggregate["min"] is None else min(aggregate["min"], value)
    aggregate["max"] = value if aggregate["max"] is None else max(aggregate["max"], value)
    key = bucket_of(value)
    aggregate["histogram"][key] = aggregate["histogram"].get(key, 0) + 1
    if source not in aggregate["sources"]:
        aggregate["sources"] = sorted([*aggregate["sources"], source])


def quantile(aggregate: dict[str, Any], q: float) -> float | None:
    """The nearest-rank q-quantile, within 1% (clamped to the exact min and max)."""
    count = aggregate["count"]
    if not count:
        return None
    rank = max(math.ceil(q * count), 1)
    seen = 0
    for key in sorted(aggregate["histogram"], key=representative):
        seen += aggregate["histogram"][key]
        if seen >= rank:
            return float(min(max(representative(key), aggregate["min"]), aggregate["max"]))
    return float(aggregate["max"])


def summary(aggregate: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard shows of a window."""
    count = aggregate["count"]
    return {
        "metric": aggregate["metric"],
        "window": aggregate["window"],
        "seconds": aggregate["seconds"],
        "count": count,
        "sum": aggregate["sum"],
        "min": aggregate["min"],
        "max": aggregate["max"],
        "mean": aggregate["sum"] / count if count else None,
        "p50": quantile(aggregate, 0.5),
        "p95": quantile(aggregate, 0.95),
        "sources": aggregate["sources"],
    }

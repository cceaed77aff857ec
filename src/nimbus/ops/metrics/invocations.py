"""The event metrics of invocations, counted once per invocation from the invoker's finish.

This is the hot path, and a warm invocation takes some tens of µs, so what it does here must
cost next to nothing: it appends the record to a list. The records are tallied BATCH at a
time, or when a scrape comes, in a loop that keeps its code and data in the CPU's caches
(tallied one by one, in between invocations, the same work cost 1-2 µs each, 5 % of a warm
invocation: see bench/observability_overhead.py). Each function's tallies are made once
(`track`) and kept: a record costs a dict look-up, a few integer additions and a bisection,
never a label look-up by string. The tallies are plain numbers, not prometheus_client's
Counter and Histogram, which take a lock per update (for threads): every update and every
scrape runs on the controller's event loop. A collector turns them into metric families.

As in Lambda's metrics, a throttled request is not an invocation: it counts only as an error
of kind `throttled`, with no duration. The duration is the handler's (Lambda's `Duration`,
which leaves out the init of a cold start: that is `nimbus_cold_start_duration_seconds`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from nimbus.ops.store import InvocationRecord

DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0,
)  # fmt: skip
"""Seconds: fine at the millisecond scale of most functions, up to the 900 s timeout limit."""
INIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a fork from the zygote takes milliseconds; init is cut off at 10 s."""
ERROR_KINDS = ("error", "timeout", "oom", "crash", "init_error", "throttled")
"""The invocation record's failed outcomes."""
BATCH = 256
"""Records kept untallied at most (a tally of this many takes some tens of µs)."""


class _Histogram:
    """Observations per bucket (the last one past every bound: +Inf) and their sum."""

    __slots__ = ("bounds", "counts", "labels", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.labels = [*(repr(bound) for bound in bounds), "+Inf"]  # `le` as Prometheus writes
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # Prometheus buckets are `le`
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, count) pairs as Prometheus wants them: each bucket counts the ones below."""
        total, buckets = 0, []
        for label, count in zip(self.labels, self.counts, strict=True):
            total += count
            buckets.append((label, float(total)))
        return buckets


class _Tally:
    """One function's figures."""

    __slots__ = ("cold_starts", "duration", "errors", "init", "invocations")

    def __init__(self) -> None:
        self.invocations = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.duration = _Histogram(DURATION_BUCKETS)
        self.cold_starts = 0
        self.init = _Histogram(INIT_BUCKETS)


class InvocationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._tallies: dict[str, _Tally] = {}
        self._pending: list[InvocationRecord] = []
        registry.register(self)

    def track(self, function: str) -> _Tally:
        """The function's tallies, made now if they are new (at zero, so that rates and
        alerts see the function before its first invocation)."""
        tally = self._tallies.get(function)
        if tally is None:
            tally = self._tallies[function] = _Tally()
        return tally

    def observe(self, record: InvocationRecord) -> None:
        """Count one finished invocation (or throttled request), now or with the next batch."""
        pending = self._pending
        pending.append(record)
        if len(pending) >= BATCH:
            self._tally()

    def _tally(self) -> None:
        records, self._pending = self._pending, []
        for record in records:
            tally = self._tallies.get(record.function) or self.track(record.function)
            outcome = record.outcome
            if outcome == "throttled":
                tally.errors[outcome] += 1
                continue
            tally.invocations += 1
            tally.duration.observe(record.duration_ms / 1000)
            if outcome != "success":
                tally.errors[outcome] += 1
            if record.cold_start:
                tally.cold_starts += 1
                if outcome != "init_error":  # an init that failed has no duration to tell
                    tally.init.observe(record.init_ms / 1000)

    def collect(self) -> Iterator[Metric]:
        """The metric families, for a scrape (prometheus_client's Collector protocol)."""
        self._tally()
        invocations = CounterMetricFamily(
            "nimbus_invocations", "Invocations that ran (throttled requests are not counted)",
            labels=["function"],
        )  # fmt: skip
        errors = CounterMetricFamily(
            "nimbus_invocation_errors",
            "Failed invocations and throttled requests, by kind: error (the handler raised), "
            "timeout, oom, crash, init_error, throttled",
            labels=["function", "kind"],
        )  # fmt: skip
        duration = HistogramMetricFamily(
            "nimbus_invocation_duration_seconds", "How long the handler ran", labels=["function"]
        )
        cold_starts = CounterMetricFamily(
            "nimbus_cold_starts", "Invocations that waited for a new instance to start",
            labels=["function"],
        )  # fmt: skip
        init = HistogramMetricFamily(
            "nimbus_cold_start_duration_seconds",
            "A cold start's init: the fork and the import of the handler's module",
            labels=["function"],
        )
        for function, tally in sorted(self._tallies.items()):
            invocations.add_metric([function], tally.invocations)
            for kind, count in tally.errors.items():
                errors.add_metric([function, kind], count)
            duration.add_metric([function], tally.duration.cumulative(), tally.duration.sum)
            cold_starts.add_metric([function], tally.cold_starts)
            init.add_metric([function], tally.init.cumulative(), tally.init.sum)
        return iter([invocations, errors, duration, cold_starts, init])

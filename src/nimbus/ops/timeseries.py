"""Time series of invocations for the dashboard's charts, computed from the invocation records.

Per function and time bucket, what CloudWatch shows for a Lambda function: invocations, errors
by kind (the record's outcome), throttles, cold starts, p50/p99 duration and peak concurrency.
As in Lambda's metrics, a throttled request is not an invocation: it counts only as a throttle,
and has no duration. Percentiles are nearest-rank over the bucket's durations.

Peak concurrency is derived from the records, not sampled: an invocation is in flight from its
`started_at` for its init plus duration (closed at both ends), and a bucket's peak is the most
invocations in flight at any instant within it.

The cost of a query is bounded: at most MAX_BUCKETS buckets over at most MAX_WINDOW seconds,
and at most MAX_ROWS records (the latest; `complete` says whether any were left out). The
records are read with the (function, started_at) index and never written.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

from nimbus.errors import InvalidRequest
from nimbus.ops.store import Store

MAX_BUCKETS = 360
MAX_WINDOW = 7 * 86400
MAX_ROWS = 200_000
THROTTLED = "throttled"
SUCCESS = "success"


class Record(NamedTuple):
    """What the series need of an invocation record."""

    function: str
    started_at: float
    duration_ms: float
    init_ms: float
    outcome: str
    cold_start: int


class Window(NamedTuple):
    """`buckets` buckets of `step` seconds; bucket i spans [edge(i), edge(i + 1)). Edges are
    multiples of the step, so that buckets stay put from one refresh to the next."""

    first: int
    """The first bucket's edge, in steps since the epoch."""
    step: float
    buckets: int

    @classmethod
    def ending(cls, now: float, seconds: int, buckets: int) -> Window:
        """The window of `seconds` whose last bucket holds `now`."""
        if not 1 <= buckets <= MAX_BUCKETS:
            raise InvalidRequest(f"buckets must be from 1 to {MAX_BUCKETS}")
        if not buckets <= seconds <= MAX_WINDOW:
            raise InvalidRequest(f"window must be from {buckets} (1 s a bucket) to {MAX_WINDOW} s")
        step = seconds / buckets
        return cls(_steps(now, step) - buckets + 1, step, buckets)

    @property
    def start(self) -> float:
        return self.edge(0)

    @property
    def end(self) -> float:
        return self.edge(self.buckets)

    def edge(self, index: int) -> float:
        return (self.first + index) * self.step

    def bucket(self, time: float) -> int | None:
        """The index of the bucket holding `time`, or None outside the window."""
        index = _steps(time, self.step) - self.first
        return index if 0 <= index < self.buckets else None


def _steps(time: float, step: float) -> int:
    """The k with k * step <= time < (k + 1) * step (the division alone may be off by one)."""
    k = math.floor(time / step)
    if k * step > time:
        return k - 1
    return k + 1 if (k + 1) * step <= time else k


class FunctionSeries(msgspec.Struct, kw_only=True):
    """One value per bucket, oldest first."""

    invocations: list[int]
    errors: dict[str, list[int]]
    """By kind (`error`, `timeout`, `oom`, `crash`, `init_error`): the kinds that occurred."""
    throttles: list[int]
    cold_starts: list[int]
    p50_ms: list[float | None]
    p99_ms: list[float | None]
    peak_concurrency: list[int]


class Series(msgspec.Struct, kw_only=True):
    start: float
    step: float
    buckets: int
    functions: dict[str, FunctionSeries]
    complete: bool
    """False when the window held more than MAX_ROWS records: only the latest were counted."""


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (`q` in (0, 1]) of a sorted, non-empty sequence."""
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def aggregate(records: Iterable[Record], window: Window) -> dict[str, FunctionSeries]:
    """The series of every function that has a record. Records that started before the window
    count only towards its concurrency (they may still be in flight in it)."""
    by_function: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_function[record.function].append(record)
    return {name: _series(rows, window) for name, rows in sorted(by_function.items())}


def _series(records: list[Record], window: Window) -> FunctionSeries:
    n = window.buckets
    invocations, throttles, cold_starts = [0] * n, [0] * n, [0] * n
    errors: dict[str, list[int]] = {}
    durations: list[list[float]] = [[] for _ in range(n)]
    for record in records:
        index = window.bucket(record.started_at)
        if index is None:
            continue
        if record.outcome == THROTTLED:
            throttles[index] += 1
            continue
        invocations[index] += 1
        cold_starts[index] += record.cold_start
        durations[index].append(record.duration_ms)
        if record.outcome != SUCCESS:
            errors.setdefault(record.outcome, [0] * n)[index] += 1
    ordered = [sorted(values) for values in durations]
    in_flight = [
        (r.started_at, r.started_at + (r.init_ms + r.duration_ms) / 1000)
        for r in records
        if r.outcome != THROTTLED
    ]
    return FunctionSeries(
        invocations=invocations,
        errors=dict(sorted(errors.items())),
        throttles=throttles,
        cold_starts=cold_starts,
        p50_ms=[percentile(values, 0.5) if values else None for values in ordered],
        p99_ms=[percentile(values, 0.99) if values else None for values in ordered],
        peak_concurrency=peak_concurrency(in_flight, window),
    )


def peak_concurrency(intervals: Sequence[tuple[float, float]], window: Window) -> list[int]:
    """Per bucket, the most closed intervals [begin, end] holding one instant of the bucket.

    A sweep: starts sort before ends at the same instant (both are in flight then), and the
    level can only peak at a bucket's first instant or at a start."""
    events = sorted([(begin, 0) for begin, _ in intervals] + [(end, 1) for _, end in intervals])
    peaks = [0] * window.buckets
    level, i = 0, 0
    for index in range(window.buckets):
        first = window.edge(index)
        while i < len(events) and events[i] < (first, 1):  # all before `first`, its starts
            level += 1 if events[i][1] == 0 else -1
            i += 1
        peak = level
        following = window.edge(index + 1)
        while i < len(events) and events[i][0] < following:
            level += 1 if events[i][1] == 0 else -1
            peak = max(peak, level)
            i += 1
        peaks[index] = peak
    return peaks


async def series(store: Store, functions: Sequence[str], window: Window, lookback: float) -> Series:
    """The series of `functions` over `window`, from the records (off the event loop). Records
    started up to `lookback` seconds before the window (the longest timeout) may still have
    been in flight in it."""
    await store.caught_up()  # what the invoker recorded so far is counted
    marks = ",".join("?" * len(functions))
    sql = (
        "SELECT function, started_at, duration_ms, init_ms, outcome, cold_start FROM invocations "
        f"WHERE function IN ({marks}) AND started_at >= ? AND started_at < ? "
        "ORDER BY started_at DESC LIMIT ?"
    )
    params = (*functions, window.start - lookback, window.end, MAX_ROWS + 1)

    def compute() -> Series:
        rows = [Record(*row) for row in store.db.read_now(sql, params)]
        complete = len(rows) <= MAX_ROWS
        found = aggregate(rows[:MAX_ROWS], window)
        return Series(
            start=window.start,
            step=window.step,
            buckets=window.buckets,
            functions={name: found.get(name) or _series([], window) for name in functions},
            complete=complete,
        )

    return await asyncio.to_thread(compute)

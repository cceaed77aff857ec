"""The dashboard's time series (nimbus.ops.timeseries) against their definitions, computed the
slow, obvious way: counts per bucket, nearest-rank percentiles, and peak concurrency as the most
intervals holding any instant of a bucket."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nimbus.errors import InvalidRequest
from nimbus.ops.timeseries import (
    MAX_BUCKETS,
    MAX_WINDOW,
    Record,
    Window,
    aggregate,
    peak_concurrency,
    percentile,
)

OUTCOMES = ["success", "success", "error", "timeout", "oom", "crash", "init_error", "throttled"]
NOW = 1_700_000_000.5


@st.composite
def windows(draw: st.DrawFn) -> Window:
    buckets = draw(st.integers(1, 12))
    seconds = draw(st.integers(buckets, buckets * 30))
    return Window.ending(NOW + draw(st.floats(0, 100)), seconds, buckets)


@st.composite
def records_in(draw: st.DrawFn, window: Window) -> list[Record]:
    """Records around the window: before it (still in flight, maybe), in it, and on its edges."""
    span = window.end - window.start
    times = st.one_of(
        st.floats(window.start - span / 2, window.end + span / 4),
        st.sampled_from([window.edge(i) for i in range(window.buckets + 1)]),
    )
    record = st.builds(
        Record,
        function=st.sampled_from(["a", "b"]),
        started_at=times,
        duration_ms=st.one_of(st.just(0.0), st.floats(0, span * 1000)),
        init_ms=st.sampled_from([0.0, 0.0, 250.0]),
        outcome=st.sampled_from(OUTCOMES),
        cold_start=st.integers(0, 1),
    )
    return draw(st.lists(record, max_size=40))


def nearest_rank(values: list[float], q: float) -> float:
    """The smallest value with at least q of the values at or below it."""
    return min(v for v in values if sum(w <= v for w in values) >= q * len(values))


def peak_by_brute_force(intervals: list[tuple[float, float]], window: Window) -> list[int]:
    peaks = []
    for index in range(window.buckets):
        first, following = window.edge(index), window.edge(index + 1)
        instants = [first] + [begin for begin, _ in intervals if first <= begin < following]
        peaks.append(max(sum(b <= t <= e for b, e in intervals) for t in instants))
    return peaks


@given(st.data())
def test_counts_percentiles_and_concurrency_follow_their_definitions(data: st.DataObject) -> None:
    window = data.draw(windows())
    records = data.draw(records_in(window))
    series = aggregate(records, window)
    assert set(series) == {r.function for r in records}
    for name, found in series.items():
        mine = [r for r in records if r.function == name]
        for index in range(window.buckets):
            first, following = window.edge(index), window.edge(index + 1)
            inside = [r for r in mine if first <= r.started_at < following]
            ran = [r for r in inside if r.outcome != "throttled"]
            assert found.invocations[index] == len(ran)
            assert found.throttles[index] == len(inside) - len(ran)
            assert found.cold_starts[index] == sum(r.cold_start for r in ran)
            for kind, counts in found.errors.items():
                assert counts[index] == sum(r.outcome == kind for r in ran)
            durations = [r.duration_ms for r in ran]
            assert found.p50_ms[index] == (nearest_rank(durations, 0.5) if ran else None)
            assert found.p99_ms[index] == (nearest_rank(durations, 0.99) if ran else None)
        assert set(found.errors) == {
            r.outcome
            for r in mine
            if r.outcome not in ("success", "throttled") and window.bucket(r.started_at) is not None
        }
        intervals = [
            (r.started_at, r.started_at + (r.init_ms + r.duration_ms) / 1000)
            for r in mine
            if r.outcome != "throttled"
        ]
        assert found.peak_concurrency == peak_by_brute_force(intervals, window)


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0.01, 1))
def test_percentile_is_the_nearest_rank(values: list[float], q: float) -> None:
    assert percentile(sorted(values), q) == nearest_rank(values, q)


@given(windows(), st.floats(NOW - 10_000, NOW + 10_000))
def test_every_instant_of_the_window_is_in_exactly_one_bucket(window: Window, t: float) -> None:
    index = window.bucket(t)
    if window.start <= t < window.end:
        assert index is not None
        assert window.edge(index) <= t < window.edge(index + 1)
    else:
        assert index is None


@given(st.integers(1, MAX_BUCKETS), st.integers(1, MAX_WINDOW), st.floats(0, 2e9))
def test_a_window_ends_with_the_bucket_of_now(buckets: int, seconds: int, now: float) -> None:
    if seconds < buckets:
        return
    window = Window.ending(now, seconds, buckets)
    assert math.isclose(window.end - window.start, seconds)
    assert window.bucket(now) == buckets - 1


def test_back_to_back_and_nested_invocations() -> None:
    window = Window(10, 10.0, 3)  # [100, 110) [110, 120) [120, 130)
    intervals = [(95.0, 101.0), (100.0, 105.0), (102.0, 104.0), (111.0, 111.0), (125.0, 140.0)]
    assert peak_concurrency(intervals, window) == [2, 1, 1]


@pytest.mark.parametrize(
    ("seconds", "buckets", "problem"),
    [(3600, 0, "buckets"), (3600, MAX_BUCKETS + 1, "buckets"), (10, 60, "window"),
     (MAX_WINDOW + 1, 60, "window")],
)  # fmt: skip
def test_a_window_out_of_bounds_is_refused(seconds: int, buckets: int, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        Window.ending(NOW, seconds, buckets)

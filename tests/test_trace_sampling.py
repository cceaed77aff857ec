"""Trace sampling: which new traces are recorded (a reservoir per second, then a ratio, as AWS
X-Ray's default rule), that a trace left out still carries its context on, not sampled, so
nothing it causes is recorded, and that a caller's sampled trace is always followed."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import APPS, Platform
from nimbus.errors import InvalidRequest
from nimbus.events import trace
from nimbus.ops.tracing.config import DEFAULT_PER_SECOND, DEFAULT_RATIO, tracing_config
from nimbus.ops.tracing.sampler import Sampler

APP = APPS / "sampling_app.py"

times = st.lists(st.floats(0, 20, allow_nan=False), max_size=200).map(sorted)


def decisions(sampler_of: Callable[[Callable[[], float]], Sampler], at: list[float]) -> list[bool]:
    """The sampler's decision for a trace starting at each of the times `at`."""
    clock = iter(at)
    sampler = sampler_of(lambda: next(clock))
    return [sampler.sample() for _ in at]


@given(times, st.integers(0, 5))
def test_without_a_ratio_each_second_records_its_first_traces_only(
    at: list[float], per_second: int
) -> None:
    taken = decisions(lambda clock: Sampler(per_second, 0.0, clock=clock), at)
    starts = Counter(int(t) for t in at)
    recorded = Counter(int(t) for t, yes in zip(at, taken, strict=True) if yes)
    for second, count in starts.items():
        assert recorded[second] == min(count, per_second)
    for _second, group in itertools.groupby(zip(at, taken, strict=True), lambda p: int(p[0])):
        flags = [yes for _, yes in group]
        assert flags == sorted(flags, reverse=True)  # the first ones of the second


@given(times, st.integers(0, 5), st.integers(0, 2**32))
def test_a_ratio_records_some_of_the_rest_and_a_full_one_all(
    at: list[float], per_second: int, seed: int
) -> None:
    everything = decisions(lambda clock: Sampler(per_second, 1.0, clock=clock, seed=seed), at)
    assert all(everything)
    some = decisions(lambda clock: Sampler(per_second, 0.5, clock=clock, seed=seed), at)
    reservoir = decisions(lambda clock: Sampler(per_second, 0.0, clock=clock), at)
    assert all(s for s, r in zip(some, reservoir, strict=True) if r)  # the reservoir's, at least


def test_half_of_the_rest_is_about_half() -> None:
    sampler = Sampler(0, 0.5, clock=lambda: 0.0, seed=7)
    share = sum(sampler.sample() for _ in range(10_000)) / 10_000
    assert 0.45 < share < 0.55


def relayed(platform: Platform, order: str, headers: dict[str, str] | None = None) -> str:
    """Relay `order` through the queue; the trace context its message arrived with."""
    response = platform.http.post(f"/relay/{order}", headers=headers or {})
    assert response.status_code == 200, response.text
    get = {"type": "table.get", "key": {"id": order}}

    def kept() -> Any:
        item = platform.http.post("/_nimbus/resources/seen", json=get).json()
        return item and item["data"]["traceparent"]

    found: str = platform.wait_for(kept, f"order {order} through the queue")
    return found


def recorded_traces(platform: Platform) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = platform.http.get("/_nimbus/traces").json()
    return listed


def test_a_trace_left_out_goes_on_unsampled_and_nothing_of_it_is_recorded(
    launch: Callable[..., Platform],
) -> None:
    platform = launch(APP, "--no-reload", "--traces-per-second", "0", "--trace-ratio", "0")
    carried = trace.parse(relayed(platform, "left-out"))
    assert carried is not None and not carried.sampled  # a context, marked not sampled
    caller_trace, caller_span = trace.new_trace_id(), trace.new_span_id()
    header = trace.format_traceparent(caller_trace, caller_span, trace.SAMPLED)
    followed = trace.parse(relayed(platform, "followed", {"traceparent": header}))
    assert followed is not None and followed.sampled and followed.trace_id == caller_trace

    def both_hops(traces: list[dict[str, Any]]) -> bool:
        return any(t["functions"] == ["keep", "send"] for t in traces)

    traces = platform.wait_for(lambda: both_hops(got := recorded_traces(platform)) and got, "")
    assert [t["trace_id"] for t in traces] == [caller_trace]  # the caller's, not the other
    assert platform.http.get(f"/_nimbus/traces/{carried.trace_id}").status_code == 404
    records = platform.http.get("/_nimbus/invocations", params={"function": "send"}).json()
    assert sorted(r["trace_id"] or "" for r in records) == ["", caller_trace]


def test_by_default_what_a_person_does_by_hand_is_all_recorded(
    launch: Callable[..., Platform],
) -> None:
    platform = launch(APP, "--no-reload")
    assert DEFAULT_PER_SECOND >= 3
    contexts = [trace.parse(relayed(platform, f"by-hand-{n}")) for n in range(3)]
    ids = {c.trace_id for c in contexts if c is not None and c.sampled}
    assert len(ids) == 3

    def recorded() -> set[str] | None:
        found = {t["trace_id"] for t in recorded_traces(platform) if len(t["functions"]) == 2}
        return found if found == ids else None

    platform.wait_for(recorded, "the three traces, both hops each")


def test_the_sampler_follows_the_opentelemetry_environment() -> None:
    assert (tracing_config(environ={}).per_second, tracing_config(environ={}).ratio) == (
        DEFAULT_PER_SECOND, DEFAULT_RATIO,
    )  # fmt: skip
    every = tracing_config(environ={"OTEL_TRACES_SAMPLER": "parentbased_always_on"})
    assert (every.per_second, every.ratio) == (0, 1.0)
    none = tracing_config(environ={"OTEL_TRACES_SAMPLER": "always_off"})
    assert (none.per_second, none.ratio) == (0, 0.0)
    ratio = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    assert tracing_config(environ=ratio).ratio == 0.25
    assert tracing_config(ratio=0.5, per_second=2, environ=ratio).ratio == 0.5  # options win
    for bad, message in [
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "not one nimbus knows"),
        ({**ratio, "OTEL_TRACES_SAMPLER_ARG": "lots"}, "between 0 and 1"),
        ({**ratio, "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "between 0 and 1"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            tracing_config(environ=bad)

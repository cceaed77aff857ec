"""Prometheus metrics (GET /_nimbus/metrics), scraped from a real `nimbus up` after real
invocations of every outcome, and the counting rules checked as properties."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from conftest import APPS, Platform, start_platform
from nimbus.client import Client
from nimbus.ops.metrics.invocations import BATCH, ERROR_KINDS, InvocationMetrics
from nimbus.ops.store import InvocationRecord, Outcome

APP = APPS / "metrics_app.py"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_platform(APP, tmp_path_factory.mktemp("metrics"), "--no-reload")
    yield platform
    platform.stop()
    platform.assert_no_loop_errors()


def scrape(platform: Platform) -> Samples:
    response = platform.http.get("/_nimbus/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a counter (or sum) went up between two scrapes."""
    return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)


def waits_for(platform: Platform, name: str, test: Callable[[float], bool], **labels: str) -> float:
    """Scrape until the sample exists and passes `test`; its value."""

    def found() -> tuple[float] | None:
        seen = value(scrape(platform), name, **labels)
        return (seen,) if seen is not None and test(seen) else None

    result: tuple[float] = platform.wait_for(found, f"{name}{labels} to pass its test")
    return result[0]


def test_every_outcome_is_counted_by_kind_with_durations(platform: Platform) -> None:
    before = scrape(platform)
    for n in range(3):
        assert platform.http.get(f"/ok/{n}").status_code == 200
    outcomes = {
        "fail": platform.invoke("fail")["outcome"],
        "slow": platform.invoke("slow")["outcome"],
        "hog": platform.invoke("hog", 512)["outcome"],
        "crash": platform.invoke("crash")["outcome"],
    }
    assert outcomes == {"fail": "error", "slow": "timeout", "hog": "oom", "crash": "crash"}
    after = scrape(platform)
    assert grew(before, after, "nimbus_invocations_total", function="ok") == 3
    assert grew(before, after, "nimbus_invocation_duration_seconds_count", function="ok") == 3
    assert grew(before, after, "nimbus_invocation_duration_seconds_sum", function="ok") > 0
    errors = "nimbus_invocation_errors_total"
    for function, kind in [*outcomes.items(), ("ok", None)]:
        assert grew(before, after, "nimbus_invocations_total", function=function) == (
            3 if function == "ok" else 1
        )
        for other in ERROR_KINDS:
            expected = 1 if other == kind else 0
            assert grew(before, after, errors, function=function, kind=other) == expected
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in after.items()
        if name == "nimbus_invocation_duration_seconds_bucket" and ("function", "ok") in labels
    )
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)  # cumulative
    assert buckets[-1] == (
        float("inf"),
        value(after, "nimbus_invocation_duration_seconds_count", function="ok"),
    )
    assert buckets[0][0] <= 0.001  # millisecond-scale buckets


def test_cold_starts_are_counted_with_their_init_duration(platform: Platform) -> None:
    before = scrape(platform)
    first = platform.invoke("crash")  # kills its instance: the next one starts cold too
    second = platform.invoke("crash")
    assert first["cold_start"] and second["cold_start"]
    after = scrape(platform)
    for name in ("nimbus_cold_starts_total", "nimbus_cold_start_duration_seconds_count"):
        assert grew(before, after, name, function="crash") == 2, name
    assert grew(before, after, "nimbus_cold_start_duration_seconds_sum", function="crash") > 0


def test_throttled_requests_and_the_busy_instance_show(platform: Platform, tmp_path: Path) -> None:
    release = tmp_path / "release"
    with httpx.Client(base_url=platform.url, timeout=60) as other, ThreadPoolExecutor(1) as pool:
        holder = pool.submit(other.get, "/busy", params={"until": str(release)})
        waits_for(platform, "nimbus_concurrent_executions", lambda v: v == 1, function="busy")
        throttled = platform.http.get("/busy", params={"until": str(release)})
        held = scrape(platform)
        release.touch()
        assert holder.result().status_code == 200
    assert throttled.status_code == 429
    assert value(held, "nimbus_invocation_errors_total", function="busy", kind="throttled") == 1
    assert value(held, "nimbus_instances", function="busy", state="busy") == 1
    assert value(held, "nimbus_instances", function="busy", state="idle") == 0
    assert value(held, "nimbus_invocations_total", function="busy") == 0  # as Lambda's metrics
    assert value(held, "nimbus_invocation_duration_seconds_count", function="busy") == 0
    done = scrape(platform)
    assert value(done, "nimbus_invocations_total", function="busy") == 1
    assert value(done, "nimbus_concurrent_executions", function="busy") == 0
    assert value(done, "nimbus_instances", function="busy", state="idle") == 1


def test_queue_depth_by_state_and_the_oldest_message_age(platform: Platform) -> None:
    with Client(platform.url, token=platform.token) as client:
        backlog = client.queue("backlog")
        for n in range(3):
            backlog.send({"n": n})
        backlog.send({"n": "later"}, delay=600)
    samples = scrape(platform)
    assert value(samples, "nimbus_queue_messages", queue="backlog", state="visible") == 3
    assert value(samples, "nimbus_queue_messages", queue="backlog", state="delayed") == 1
    assert value(samples, "nimbus_queue_messages", queue="backlog", state="in_flight") == 0
    waits_for(platform, "nimbus_queue_oldest_message_age_seconds", lambda v: v > 0, queue="backlog")


def test_dead_letters_of_the_platform_and_of_a_queue(platform: Platform) -> None:
    accepted = platform.http.post("/_nimbus/functions/doomed/invoke?mode=async", json={"x": 1})
    assert accepted.status_code == 202
    waits_for(platform, "nimbus_dead_letters", lambda v: v == 1, function="doomed")
    with Client(platform.url, token=platform.token) as client:
        client.queue("brittle").send("breaks its consumer")
    waits_for(platform, "nimbus_queue_dead_letters", lambda v: v == 1, queue="brittle")


def test_stream_iterator_age_per_partition_grows_with_a_backlog(
    platform: Platform, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    keys = [f"user-{n}" for n in range(16)]
    partitions = {
        str(p) for p in platform.invoke("produce", {"gate": str(gate), "keys": keys})["result"]
    }
    assert partitions == {"0", "1"}
    age, labels = (
        "nimbus_stream_iterator_age_seconds",
        {"function": "on_clicks", "stream": "clicks"},
    )
    for partition in partitions:  # the consumer is held on its first record: the rest wait
        waits_for(platform, age, lambda v: v > 0, partition=partition, **labels)
    gate.touch()
    for partition in partitions:
        waits_for(platform, age, lambda v: v == 0, partition=partition, **labels)


def test_schedule_lag_is_reported_per_schedule(platform: Platform) -> None:
    waits_for(platform, "nimbus_invocations_total", lambda v: v > 0, function="tick")
    lag = value(
        scrape(platform), "nimbus_schedule_lag_seconds", function="tick", schedule="rate(1 second)"
    )
    assert lag is not None and lag >= 0


def test_labels_stay_bounded_whatever_the_requests(platform: Platform) -> None:
    assert platform.http.get("/ok/warm").status_code == 200
    series = set(scrape(platform))
    ids = [uuid.uuid4().hex for _ in range(40)]
    for request_id in ids:
        response = platform.http.get(
            f"/ok/{request_id}", params={"q": request_id}, headers={"x-id": request_id}
        )
        assert response.status_code == 200
    assert platform.http.get(f"/nowhere/{ids[0]}").status_code == 404
    after = scrape(platform)
    assert set(after) == series
    assert not any(i in label for key in after for _, label in key[1] for i in ids)


def test_the_metrics_want_the_platform_token(platform: Platform) -> None:
    missing = httpx.get(f"{platform.url}/_nimbus/metrics")
    wrong = httpx.get(f"{platform.url}/_nimbus/metrics", headers={"authorization": "Bearer nope"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "nimbus_" not in missing.text + wrong.text


def test_openmetrics_and_gzip_when_the_scraper_asks(platform: Platform) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = platform.http.get(
        "/_nimbus/metrics", headers={"accept": accept, "accept-encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    assert response.headers["content-encoding"] == "gzip"
    names = {family.name for family in openmetrics(response.text)}
    assert {"nimbus_invocations", "nimbus_instances", "nimbus_queue_messages"} <= names


@pytest.mark.parametrize(
    ("options", "environment"), [(["--no-metrics"], {}), ([], {"NIMBUS_METRICS": "false"})]
)
def test_metrics_off_says_so_and_the_platform_runs(
    launch: Callable[..., Platform],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    environment: dict[str, str],
) -> None:
    for name, setting in environment.items():
        monkeypatch.setenv(name, setting)  # `nimbus up` inherits it
    platform = launch(APP, "--no-reload", *options)
    response = platform.http.get("/_nimbus/metrics")
    assert response.status_code == 404
    assert "--no-metrics" in response.json()["error"]
    assert platform.http.get("/ok/1").json() == {"id": "1"}


RECORD = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["success", *ERROR_KINDS]),
    st.booleans(),
    st.floats(min_value=0, max_value=1e6),
)
RECORDS = st.lists(st.tuples(RECORD, st.integers(1, 2 * BATCH // 10)), max_size=20).map(
    lambda runs: [record for record, times in runs for _ in range(times)]
)
"""Up to four batches of records, some repeated many times (tallied batch by batch)."""


def _record(function: str, outcome: Outcome, cold: bool, duration_ms: float) -> InvocationRecord:
    return InvocationRecord(
        id="x", function=function, trigger="invoke", started_at=0.0, duration_ms=duration_ms,
        billed_ms=0, memory_mb=128, peak_memory_mb=0.0, cold_start=cold, init_ms=1.0,
        outcome=outcome,
    )  # fmt: skip


@given(RECORDS)
def test_counting_rules(records: list[tuple[str, Outcome, bool, float]]) -> None:
    """Throttles count only as errors; every other record is one invocation with a duration,
    an error of its kind unless it succeeded, and a cold start if it was one (with an init
    duration unless the init failed)."""
    registry = CollectorRegistry()
    metrics = InvocationMetrics(registry)
    for record in records:
        metrics.observe(_record(*record))

    def sample(name: str, function: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"function": function, **labels}) or 0.0

    for function in ("a", "b"):
        mine = [r for r in records if r[0] == function]
        ran = [r for r in mine if r[1] != "throttled"]
        kinds = Counter(r[1] for r in mine)
        assert sample("nimbus_invocations_total", function) == len(ran)
        assert sample("nimbus_invocation_duration_seconds_count", function) == len(ran)
        assert sample("nimbus_invocation_duration_seconds_sum", function) == pytest.approx(
            sum(r[3] for r in ran) / 1000
        )
        for kind in ERROR_KINDS:
            assert sample("nimbus_invocation_errors_total", function, kind=kind) == kinds[kind]
        assert sample("nimbus_cold_starts_total", function) == sum(1 for r in ran if r[2])
        inits = sum(1 for r in ran if r[2] and r[1] != "init_error")
        assert sample("nimbus_cold_start_duration_seconds_count", function) == inits

"""How far behind its source each running trigger is, read when Prometheus scrapes.

- Stream iterator age, per partition: seconds since the next record the consumer has not
  checkpointed arrived (0 when it has read everything), as Lambda's `IteratorAge` for Kinesis:
  it grows while a consumer falls behind, or while a bad record holds its partition.
- Schedule lag: how late the schedule runs. While a tick that is due has not fired, how long
  it has been due; otherwise how late the last tick fired (its asynchronous invocation was
  accepted) after its scheduled time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from nimbus.errors import NotFound
from nimbus.triggers.base import TriggerRunner
from nimbus.triggers.schedule import ScheduleTicker
from nimbus.triggers.stream import StreamConsumer


async def stream_ages(runners: Iterable[TriggerRunner]) -> list[Metric]:
    age = GaugeMetricFamily(
        "nimbus_stream_iterator_age_seconds",
        "Seconds since the oldest record a stream trigger has not processed arrived",
        labels=["function", "stream", "partition"],
    )
    ages: dict[tuple[str, str, str], float] = {}
    for runner in runners:
        if not isinstance(runner, StreamConsumer):
            continue
        stream, platform = runner.trigger.stream, runner.platform
        for partition, after in (await platform.store.checkpoints(runner.consumer)).items():
            try:
                seconds = await platform.services.streams.age(stream, int(partition), after)
            except NotFound:
                continue  # the stream was removed by a deploy
            key = (runner.name, stream, partition)
            ages[key] = max(seconds, ages.get(key, 0.0))  # two triggers on one stream: the worst
    for labels, seconds in sorted(ages.items()):
        age.add_metric(list(labels), seconds)
    return [age]


async def schedule_lags(runners: Iterable[TriggerRunner]) -> list[Metric]:
    lag = GaugeMetricFamily(
        "nimbus_schedule_lag_seconds",
        "How late a schedule runs: how long a due tick has waited, else how late the last fired",
        labels=["function", "schedule"],
    )
    lags: dict[tuple[str, str], float] = {}
    for runner in runners:
        if isinstance(runner, ScheduleTicker):
            seconds = await _lag(runner, time.time())
            if seconds is not None:
                key = (runner.name, runner.trigger.expression)
                lags[key] = max(seconds, lags.get(key, 0.0))
    for labels, seconds in sorted(lags.items()):
        lag.add_metric(list(labels), seconds)
    return [lag]


async def _lag(runner: ScheduleTicker, now: float) -> float | None:
    """None before the ticker has registered its schedule."""
    platform = runner.platform
    try:
        state = await platform.services.schedules.state(runner.consumer)
    except NotFound:
        return None
    due = state.parsed().latest_at_or_before(now)
    fired = state.origin if state.last_fired is None else state.last_fired
    if due is not None and due > fired:
        return now - due
    if state.last_fired is None:
        return 0.0  # nothing was due yet
    job = await platform.store.job(runner.job_id(state.last_fired))
    return 0.0 if job is None else max(0.0, job.created_at - state.last_fired)

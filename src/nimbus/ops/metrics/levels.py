"""Levels of the platform, read when Prometheus scrapes: instances, running and waiting
invocations, queue depths and ages, dead letters. Nothing here runs per invocation.

The queue figures are SQS's CloudWatch metrics: `ApproximateNumberOfMessagesVisible`,
`...NotVisible` (in flight), `...Delayed` and `ApproximateAgeOfOldestMessage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from nimbus.compute.pool import Pool
from nimbus.errors import NotFound
from nimbus.ops.store import Store
from nimbus.services.queue import Queues


def compute(pools: Mapping[str, Pool]) -> list[Metric]:
    """Each function's instances by state, and the invocations running or waiting now."""
    instances = GaugeMetricFamily(
        "nimbus_instances",
        "Instances by state: idle and busy ones are warm (started); busy ones run invocations",
        labels=["function", "state"],
    )
    running = GaugeMetricFamily(
        "nimbus_concurrent_executions", "Invocations running now", labels=["function"]
    )
    waiting = GaugeMetricFamily(
        "nimbus_invocations_waiting",
        "Asynchronous invocations waiting for a free instance",
        labels=["function"],
    )
    for name, pool in sorted(pools.items()):
        busy = pool.busy_instances
        instances.add_metric([name, "idle"], len(pool.instances) - busy)
        instances.add_metric([name, "busy"], busy)
        instances.add_metric([name, "starting"], pool.size - len(pool.instances))
        running.add_metric([name], sum(instance.leases for instance in pool.instances))
        waiting.add_metric([name], pool.waiting)
    return [instances, running, waiting]


async def queues(service: Queues, names: Iterable[str]) -> list[Metric]:
    """Each declared queue's messages by state, the age of its oldest visible message and its
    own dead letters (a dead-letter queue's depth is its messages)."""
    messages = GaugeMetricFamily(
        "nimbus_queue_messages",
        "Messages by state: visible (can be received), in_flight (received, not deleted), "
        "delayed (not visible yet)",
        labels=["queue", "state"],
    )
    oldest = GaugeMetricFamily(
        "nimbus_queue_oldest_message_age_seconds",
        "Seconds since the oldest visible message was sent (0: none is visible)",
        labels=["queue"],
    )
    dead = GaugeMetricFamily(
        "nimbus_queue_dead_letters",
        "Messages in the queue's own dead-letter area (max_receives without a dead_letter queue)",
        labels=["queue"],
    )
    for name in sorted(names):
        try:
            stats = await service.stats(name)
        except NotFound:
            continue  # removed by a deploy since the spec was read
        messages.add_metric([name, "visible"], stats.visible)
        messages.add_metric([name, "in_flight"], stats.in_flight)
        messages.add_metric([name, "delayed"], stats.delayed)
        oldest.add_metric([name], stats.oldest_age)
        dead.add_metric([name], stats.dead_letters)
    return [messages, oldest, dead]


async def dead_letters(store: Store) -> list[Metric]:
    """The platform's dead letters (what the failure policy gave up on) of each function."""
    depth = GaugeMetricFamily(
        "nimbus_dead_letters",
        "Events in the platform's dead letters (nimbus dlq), by the function that failed them",
        labels=["function"],
    )
    for function, count in sorted((await store.dead_letter_counts()).items()):
        depth.add_metric([function], count)
    return [depth]

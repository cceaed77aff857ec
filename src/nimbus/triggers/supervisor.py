"""Keeps the running triggers in line with the deployed spec, and the resources they read.

Applying a spec starts the triggers it adds, stops the ones it removes, and restarts those whose
function changed; cursors are durable, so a restarted trigger resumes where it stopped.
Removing a resource from the spec stops its triggers but keeps its data (nothing is deleted by
an edit; like CloudFormation's `DeletionPolicy: Retain`).
"""

from __future__ import annotations

import asyncio
import time
from typing import NoReturn

from nimbus.errors import Conflict
from nimbus.spec.model import AppSpec, FunctionSpec, HttpTrigger, Trigger
from nimbus.spec.mqtt import MqttTrigger
from nimbus.spec.resources import (
    BucketTrigger,
    QueueSpec,
    QueueSubscription,
    QueueTrigger,
    ScheduleTrigger,
    StreamTrigger,
    TableTrigger,
    TopicTrigger,
)
from nimbus.spec.webhooks import WebhookTrigger
from nimbus.spec.websockets import WebSocketTrigger
from nimbus.triggers.base import Platform, TriggerRunner
from nimbus.triggers.bucket import BucketSubscriber
from nimbus.triggers.fanout import QueueForwarder
from nimbus.triggers.queue import QueuePoller
from nimbus.triggers.schedule import ScheduleTicker
from nimbus.triggers.stream import StreamConsumer
from nimbus.triggers.table import ChangeFeedConsumer
from nimbus.triggers.topic import TopicSubscriber

MAINTENANCE_INTERVAL = 30.0  # seconds between retention / TTL sweeps of every service

RunnerKey = tuple[str, str]


class Triggers:
    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._runners: dict[RunnerKey, TriggerRunner | QueueForwarder] = {}
        self._last_maintenance = 0.0
        self._maintenance: asyncio.Task[None] | None = None

    async def create_resources(self, spec: AppSpec, current: AppSpec | None) -> None:
        """Create what the spec declares (idempotent; a changed setting is updated in place).
        A change no backend can make is refused before anything is written."""
        _check_changes(current, spec)
        services = self._platform.services
        for queue in _dependencies_first(spec):
            await services.queues.create(queue)
        for topic in spec.topics.values():
            await services.topics.create(topic)
        for stream in spec.streams.values():
            await services.streams.create(stream)
        for table in spec.tables.values():
            await services.tables.create(table)
        for bucket in spec.buckets.values():
            await services.buckets.create(bucket)
        for websocket in spec.websockets.values():
            await services.websockets.create(websocket)

    async def reconcile(self, spec: AppSpec) -> None:
        desired = self._desired(spec)
        for key in [key for key in self._runners if key not in desired]:
            await self._runners.pop(key).stop()
        for key, make in desired.items():
            if key not in self._runners:
                runner = make()
                if isinstance(runner, TriggerRunner):
                    await self._prepare(runner)
                self._runners[key] = runner
                runner.start()

    def running(self) -> list[TriggerRunner]:
        """The functions' triggers running now (metrics read their cursors and schedules)."""
        return [runner for runner in self._runners.values() if isinstance(runner, TriggerRunner)]

    async def _prepare(self, runner: TriggerRunner) -> None:
        """A runner whose preparation fails starts anyway: its supervised run retries."""
        try:
            await runner.prepare()
        except Exception as error:
            what = f"the {runner.trigger.label} trigger of {runner.name!r}"
            self._platform.logs.platform(f"preparing {what} failed: {error!r}")

    async def stop(self, grace: float) -> None:
        runners = list(self._runners.values())
        self._runners.clear()
        if self._maintenance is not None:
            self._maintenance.cancel()
        await asyncio.wait_for(
            asyncio.gather(*(runner.stop() for runner in runners), return_exceptions=True),
            grace,
        )

    def maintain(self) -> None:
        """Called on every controller tick: now and then, drop what retention and TTL expire."""
        now = time.time()
        busy = self._maintenance is not None and not self._maintenance.done()
        if busy or now - self._last_maintenance < MAINTENANCE_INTERVAL:
            return
        self._last_maintenance = now
        self._maintenance = asyncio.get_running_loop().create_task(self._sweep(now))

    async def _sweep(self, now: float) -> None:
        services = self._platform.services
        try:
            await services.queues.sweep(now)
            await services.topics.trim(now)
            await services.streams.trim(now)
            await services.tables.sweep(now)
            await services.buckets.trim(now)
        except Exception as error:
            self._platform.logs.platform(f"the retention sweep failed: {error!r}")

    def _desired(self, spec: AppSpec) -> dict[RunnerKey, _Factory]:
        desired: dict[RunnerKey, _Factory] = {}
        for function in spec.functions.values():
            for trigger in function.triggers:
                if isinstance(trigger, HttpTrigger | WebhookTrigger | WebSocketTrigger):
                    continue  # served by the gateway
                if isinstance(trigger, MqttTrigger):
                    continue  # delivered by the MQTT bridge (nimbus.edge.mqtt)
                key = (function.model_dump_json(), trigger.model_dump_json())
                desired[key] = _Factory(self._platform, function, trigger)
        for topic in spec.topics.values():
            for subscription in topic.subscriptions:
                key = (f"topic:{topic.name}", subscription.model_dump_json())
                desired[key] = _Factory(self._platform, topic.name, subscription)
        return desired


class _Factory:
    def __init__(
        self,
        platform: Platform,
        owner: FunctionSpec | str,
        trigger: Trigger | QueueSubscription,
    ) -> None:
        self._platform = platform
        self._owner = owner
        self._trigger = trigger

    def __call__(self) -> TriggerRunner | QueueForwarder:
        platform, owner, trigger = self._platform, self._owner, self._trigger
        if isinstance(owner, str):
            assert isinstance(trigger, QueueSubscription)
            return QueueForwarder(platform, owner, trigger)
        if isinstance(trigger, QueueTrigger):
            return QueuePoller(platform, owner, trigger)
        if isinstance(trigger, TopicTrigger):
            return TopicSubscriber(platform, owner, trigger)
        if isinstance(trigger, StreamTrigger):
            return StreamConsumer(platform, owner, trigger)
        if isinstance(trigger, TableTrigger):
            return ChangeFeedConsumer(platform, owner, trigger)
        if isinstance(trigger, BucketTrigger):
            return BucketSubscriber(platform, owner, trigger)
        assert isinstance(trigger, ScheduleTrigger)
        return ScheduleTicker(platform, owner, trigger)


def _check_changes(current: AppSpec | None, desired: AppSpec) -> None:
    """What cannot change in place: a queue's kind, a stream's partitions (no resharding), a
    table's keys."""
    if current is None:
        return
    for name, queue in desired.queues.items():
        before = current.queues.get(name)
        if before is not None and before.fifo != queue.fifo:
            kind = "FIFO" if before.fifo else "standard"
            _refuse(f"queue {name!r} is {kind}; that cannot change")
    for name, stream in desired.streams.items():
        old = current.streams.get(name)
        if old is not None and old.partitions != stream.partitions:
            _refuse(f"stream {name!r} has {old.partitions} partitions; resharding is not supported")
    for name, table in desired.tables.items():
        was = current.tables.get(name)
        if was is not None and (was.key, was.sort_key) != (table.key, table.sort_key):
            _refuse(f"table {name!r} is keyed by {(was.key, was.sort_key)}; its keys cannot change")


def _refuse(reason: str) -> NoReturn:
    raise Conflict(f"{reason}: declare a new one instead (nothing was changed)")


def _dependencies_first(spec: AppSpec) -> list[QueueSpec]:
    """Dead-letter queues before the queues that name them."""
    return sorted(spec.queues.values(), key=lambda queue: queue.dead_letter is not None)

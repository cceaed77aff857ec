"""The platform's events (`nimbus.events.platform`), published to the system event bus without
ever failing or slowing down what emits them.

Emitting appends to a bounded buffer (past BUFFER waiting events the oldest are dropped, and the
loss is logged); one task publishes the buffer in batches. Throttles and failed invocations come
in floods, so they are coalesced per function (and kind of failure): the first at once, the
rest summed once per WINDOW (`nimbus.ops.bursts`).

No feedback loops: a subscriber of platform events that fails would cause an event about its
failure, which it would handle and fail again, without end. So the failures of invocations the
system topic triggered (and the dead letters they leave) are not published: they are recorded,
logged and dead-lettered like any other. A longer loop through other functions is held to one
event per window by the coalescing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import msgspec
from pydantic import ValidationError

from nimbus.events import platform as catalogue
from nimbus.events.platform import PlatformEvent
from nimbus.ops.bursts import Bursts
from nimbus.ops.database import Database
from nimbus.ops.logs import LogSink
from nimbus.ops.store import InvocationRecord
from nimbus.services.queue import QueueDeadLettered
from nimbus.services.topic import MAX_BATCH, PublishEntry, Topics
from nimbus.spec.model import AppSpec, FunctionSpec
from nimbus.spec.resources import ScheduleTrigger, TopicSpec
from nimbus.spec.system import PLATFORM_EVENTS

if TYPE_CHECKING:
    from nimbus.compute.failures import FailedEvent

BUFFER = 1000  # events waiting to be published, at most
WINDOW = 5.0  # seconds over which a flood of throttles or failures is summed
LOOP_SOURCE = f"topic:{PLATFORM_EVENTS}"  # the trigger label of platform-event subscribers

BurstKey = tuple[str, str, str]  # event type, function, kind of failure
Occurrence = tuple[InvocationRecord, FunctionSpec | None]  # and the function as it was then


class PlatformEvents:
    """The platform's publisher of its own events: the hooks call it, it never fails them."""

    def __init__(
        self,
        topics: Topics,
        db: Database,
        spec: Callable[[], AppSpec | None],
        logs: LogSink,
        *,
        window: float = WINDOW,
    ) -> None:
        self._topics = topics
        self._db = db
        self._spec = spec
        self._logs = logs
        self._window = window
        self._buffer: deque[PlatformEvent] = deque(maxlen=BUFFER)
        self._dropped = 0
        self._sending = False
        self._wake = asyncio.Event()
        self._bursts: Bursts[BurstKey, Occurrence] = Bursts()
        self._timers: dict[BurstKey, asyncio.TimerHandle] = {}
        self._deployed: AppSpec | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the system topic, recall the last deployment, start publishing."""
        await self._topics.create(TopicSpec(name=PLATFORM_EVENTS))
        rows = await self._db.read("SELECT spec FROM last_deployment")
        with contextlib.suppress(ValidationError):  # written by an older version: start afresh
            self._deployed = AppSpec.model_validate_json(rows[0]["spec"]) if rows else None
        self._task = asyncio.get_running_loop().create_task(self._publish())

    async def stop(self, grace: float) -> None:
        """Publish what is waiting (bursts summed up to now), for at most `grace` seconds."""
        for key, timer in list(self._timers.items()):
            timer.cancel()
            self._close_burst(key, reopen=False)
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._buffer or self._sending:
                    await asyncio.sleep(0.01)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def emit(self, event: PlatformEvent) -> None:
        """Queue an event for publishing; never waits, never raises."""
        if len(self._buffer) == self._buffer.maxlen:
            self._dropped += 1
        self._buffer.append(event)
        self._wake.set()

    async def deployed(self, spec: AppSpec) -> None:
        """Emit what this deployment changed since the last one (also across restarts)."""
        with self._guard():
            for event in catalogue.deploy_events(self._deployed, spec):
                self.emit(event)
        self._deployed = spec
        self._db.submit(
            "INSERT OR REPLACE INTO last_deployment VALUES (1, ?, ?)",
            (spec.model_dump_json(), time.time()),
        )

    def invocation_failed(self, record: InvocationRecord) -> None:
        """The invoker's hook for a failed or throttled invocation."""
        if record.error is None or record.trigger == LOOP_SOURCE:
            return
        with self._guard():
            kind = record.error.kind
            event_type = (
                catalogue.FUNCTION_THROTTLED if kind == "Throttled" else catalogue.INVOCATION_FAILED
            )
            key = (event_type, record.function, kind)
            spec = self._spec()
            occurrence = (record, spec.functions.get(record.function) if spec else None)
            now = time.time()
            if self._bursts.occur(key, now, occurrence):
                self.emit(self._burst_event(key, 1, now, occurrence))
                self._close_later(key)

    def dead_lettered(self, event: FailedEvent, target: str | None) -> None:
        """The failure router's hook: `event` went to `target` (None: the platform's dead
        letters)."""
        if event.source == LOOP_SOURCE:
            return
        with self._guard():
            data = catalogue.MessageDeadLettered(
                source=event.source, target=target, function=event.function,
                request_id=event.request_id or None, attempts=event.attempts,
                condition=event.condition, error_type=event.error.type,
                error_message=event.error.message[: catalogue.MAX_ERROR_CHARS],
            )  # fmt: skip
            subject = catalogue.function_subject(event.function)
            self.emit(PlatformEvent(catalogue.MESSAGE_DEAD_LETTERED, subject, data))

    def queue_dead_lettered(self, moved: QueueDeadLettered) -> None:
        """The queue service's report of a message it moved after `max_receives`."""
        with self._guard():
            error = moved.last_error[: catalogue.MAX_ERROR_CHARS] if moved.last_error else None
            data = catalogue.MessageDeadLettered(
                source=f"queue:{moved.queue}", target=moved.target, message_id=moved.id,
                attempts=moved.receive_count, condition="MaxReceives", error_message=error,
            )  # fmt: skip
            subject = f"nimbus:queue:{moved.queue}"
            self.emit(PlatformEvent(catalogue.MESSAGE_DEAD_LETTERED, subject, data))

    def schedule_missed(
        self, function: FunctionSpec, trigger: ScheduleTrigger, count: int, last: float | None
    ) -> None:
        """A schedule gave up `count` ticks owed from while the platform was down."""
        with self._guard():
            data = catalogue.ScheduleMissed(
                **catalogue.about(function, function.name), schedule=trigger.expression,
                timezone=trigger.timezone, missed=trigger.missed, count=count, last_fired=last,
            )  # fmt: skip
            subject = catalogue.function_subject(function.name)
            self.emit(PlatformEvent(catalogue.SCHEDULE_MISSED, subject, data))

    def _close_later(self, key: BurstKey) -> None:
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self._window, self._close_burst, key)

    def _close_burst(self, key: BurstKey, reopen: bool = True) -> None:
        self._timers.pop(key, None)
        with self._guard():
            summary = self._bursts.close(key, time.time())
            if summary is None:
                return
            self.emit(self._burst_event(key, summary.count, summary.since, summary.latest))
            if reopen:
                self._close_later(key)

    @staticmethod
    def _burst_event(
        key: BurstKey, count: int, since: float, occurrence: Occurrence
    ) -> PlatformEvent:
        event_type, function, kind = key
        record, spec = occurrence
        about = catalogue.about(spec, function)
        data: msgspec.Struct
        if event_type == catalogue.FUNCTION_THROTTLED:
            limit = spec.max_instances if spec is not None else 0
            data = catalogue.FunctionThrottled(
                **about, count=count, since=since, max_instances=limit
            )
        else:
            assert record.error is not None
            data = catalogue.InvocationFailed(
                **about, count=count, since=since, kind=kind, error_type=record.error.type,
                error_message=record.error.message[: catalogue.MAX_ERROR_CHARS],
                request_id=record.id, trigger=record.trigger,
            )  # fmt: skip
        return PlatformEvent(event_type, catalogue.function_subject(function), data)

    async def _publish(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                batch = [self._buffer.popleft() for _ in range(min(MAX_BATCH, len(self._buffer)))]
                self._sending = True
                await self._send(batch)
                self._sending = False
            if self._dropped:
                self._logs.platform(
                    f"{self._dropped} platform event(s) were dropped: more than {BUFFER} waited"
                )
                self._dropped = 0

    async def _send(self, batch: list[PlatformEvent]) -> None:
        entries = [
            PublishEntry(data=e.data, type=e.type, source=e.source, subject=e.subject)
            for e in batch
        ]
        try:
            results = await self._topics.publish_batch(PLATFORM_EVENTS, entries)
        except Exception as error:
            self._logs.platform(f"{len(batch)} platform event(s) could not be published: {error!r}")
            return
        for event, result in zip(batch, results, strict=True):
            if result.error is not None:
                self._logs.platform(f"platform event {event.type} not published: {result.error}")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """What emits must never fail because of an event: a fault here is only logged."""
        try:
            yield
        except Exception as error:
            self._logs.platform(f"a platform event was lost: {error!r}")

"""A topic's queue subscription: matching events become messages of the queue (SNS -> SQS).

The message body is the event in CloudEvents' JSON form, so a queue consumer sees the event's
id, type, source and trace context, not only its data. An event the queue refuses (too large
for it, an attribute name it does not take) would be refused again on every try: it goes to the
platform's dead letters (source `topic:NAME`, no function), never dropped silently.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from nimbus.compute.protocol import ErrorInfo
from nimbus.ids import new_id
from nimbus.ops.store import DeadLetter
from nimbus.services.queue import EntryError, SendEntry
from nimbus.services.topic import TopicEvent
from nimbus.spec.resources import QueueSubscription
from nimbus.triggers.base import Platform, stop, supervise
from nimbus.triggers.topic import TopicFollower, typed_event


class QueueForwarder(TopicFollower):
    def __init__(self, platform: Platform, topic: str, subscription: QueueSubscription) -> None:
        super().__init__(platform, topic, subscription.pattern)
        self.queue = subscription.queue
        self._task: asyncio.Task[None] | None = None

    @property
    def subscriber(self) -> str:
        return f"queue:{self.queue}"

    async def hand_on(self, events: list[TopicEvent]) -> None:
        entries = [
            SendEntry(
                body=msgspec.json.encode(typed_event(self.topic, event)).decode(),
                attributes=event.attributes, traceparent=event.traceparent,
            )
            for event in events
        ]  # fmt: skip
        result = await self.platform.services.queues.send_batch(self.queue, entries)
        for failure in result.failed:
            await self._dead_letter(events[failure.index], entries[failure.index], failure)

    async def _dead_letter(self, event: TopicEvent, entry: SendEntry, failure: EntryError) -> None:
        message = f"queue {self.queue!r} refused the event: {failure.message}"
        self.platform.logs.platform(
            f"topic {self.topic!r}: {message}; it is kept in the dead letters"
        )
        letter = DeadLetter(
            id=new_id(), function="", payload=entry.body.encode(),
            error=ErrorInfo("Handler", failure.error, message), attempts=1, job_id="",
            created_at=event.time, failed_at=time.time(), source=f"topic:{self.topic}",
        )  # fmt: skip
        await self.platform.store.add_dead_letter(letter)

    def start(self) -> None:
        what = f"forwarding topic {self.topic!r} to queue {self.queue!r}"
        self._task = supervise(self.platform.logs, what, self.follow)

    async def stop(self) -> None:
        await stop(self._task)

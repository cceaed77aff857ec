"""A topic's queue subscription: matching events become messages of the queue (SNS -> SQS).

The message body is the event in CloudEvents' JSON form, so a queue consumer sees the event's
id, type, source and trace context, not only its data.
"""

from __future__ import annotations

import asyncio

import msgspec

from nimbus.services.queue import SendEntry
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
        await self.platform.services.queues.send_batch(self.queue, entries)

    def start(self) -> None:
        what = f"forwarding topic {self.topic!r} to queue {self.queue!r}"
        self._task = supervise(self.platform.logs, what, self.follow)

    async def stop(self) -> None:
        await stop(self._task)

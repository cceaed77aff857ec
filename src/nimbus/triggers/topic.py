"""Topic subscriptions: a function (asynchronous invocation per matching event, like SNS or
EventBridge invoking Lambda) or a queue (SNS -> SQS fan-out) follows the topic's log.

Each subscriber has its own durable cursor. An event is handed on (the asynchronous
invocation accepted durably, or the message sent) before the cursor moves past it: at least
once, never lost; retries, destinations and dead letters are the asynchronous invoker's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import msgspec

from nimbus.events import aws
from nimbus.events.types import TopicEvent as TypedTopicEvent
from nimbus.services.patterns import Pattern, compile_pattern
from nimbus.services.topic import TopicEvent, pattern_document
from nimbus.spec.resources import TopicTrigger
from nimbus.triggers.base import Platform, TriggerRunner

LONG_POLL = 5.0
READ_LIMIT = 100


class TopicFollower(ABC):
    """Reads a topic after a durable cursor, hands each matching event on, commits."""

    def __init__(self, platform: Platform, topic: str, pattern: dict[str, Any] | None) -> None:
        self.platform = platform
        self.topic = topic
        self._pattern: Pattern | None = None if pattern is None else compile_pattern(pattern)

    @property
    @abstractmethod
    def subscriber(self) -> str: ...

    @abstractmethod
    async def hand_on(self, events: list[TopicEvent]) -> None:
        """Deliver the matching events; return only once they are durably accepted."""

    async def follow(self) -> None:
        topics = self.platform.services.topics
        await topics.register(self.topic, self.subscriber)
        while True:
            events = await topics.read(self.topic, self.subscriber, READ_LIMIT)
            if not events:
                after = await topics.cursor(self.topic, self.subscriber)
                await topics.wait(self.topic, after, LONG_POLL)
                continue
            matching = [e for e in events if self._matches(e)]
            if matching:
                await self.hand_on(matching)
            await topics.commit(self.topic, self.subscriber, events[-1].sequence)

    def _matches(self, event: TopicEvent) -> bool:
        return self._pattern is None or matches(self._pattern, self.topic, event)


class TopicSubscriber(TriggerRunner, TopicFollower):
    trigger: TopicTrigger

    def __init__(self, platform: Platform, function: Any, trigger: TopicTrigger) -> None:
        TriggerRunner.__init__(self, platform, function, trigger)
        TopicFollower.__init__(self, platform, trigger.topic, trigger.pattern)

    @property
    def subscriber(self) -> str:
        return self.consumer

    async def prepare(self) -> None:
        await self.platform.services.topics.register(self.topic, self.subscriber)

    async def run(self) -> None:
        await self.follow()

    async def hand_on(self, events: list[TopicEvent]) -> None:
        label = f"topic:{self.topic}"
        for event in events:
            await self.platform.jobs.submit(
                self.name, self._event(event), label, traceparent=event.traceparent,
                job_id=self.job_id(event.sequence),
            )  # fmt: skip

    def _event(self, event: TopicEvent) -> bytes:
        typed = typed_event(self.topic, event)
        if self.style == "aws":
            return msgspec.json.encode(aws.sns_event(typed, self.topic))
        return msgspec.json.encode(typed)


def matches(pattern: Pattern, topic: str, event: TopicEvent) -> bool:
    """Whether the event matches, seen as it is delivered: an event published without a source
    has its topic's."""
    if not event.source:
        event = msgspec.structs.replace(event, source=default_source(topic))
    return pattern.matches(pattern_document(event))


def default_source(topic: str) -> str:
    """The CloudEvents source of an event published without one."""
    return f"nimbus:topic:{topic}"


def typed_event(topic: str, event: TopicEvent) -> TypedTopicEvent:
    return TypedTopicEvent(
        id=event.id, source=event.source or default_source(topic), type=event.type,
        time=event.time, traceparent=event.traceparent, subject=event.subject,
        attributes=event.attributes, data=event.json(),
    )  # fmt: skip

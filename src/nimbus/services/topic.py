"""Topics: publish/subscribe event buses (SNS topic, EventBridge bus), backend-neutral.

A topic is a durable log of events. Publishing appends and returns once committed; the platform's
subscription deliverers (a function trigger, or a queue subscription) are the *consumers*: each
reads the log after its own durable cursor, matches its pattern (`nimbus.services.patterns`)
against `pattern_document(event)`, delivers, then commits the cursor. Consumers are independent:
one slow subscriber never holds back another. Retention: an event is kept until every registered
consumer has committed past it, and never longer than `RETENTION` (like EventBridge's maximum
event age); a topic without consumers keeps events for `RETENTION`, so a subscription added soon
after can start at "oldest".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import msgspec

from nimbus.errors import InvalidRequest, PayloadTooLarge
from nimbus.events.cloudevents import format_time
from nimbus.services.patterns import compile_pattern
from nimbus.spec.resources import TopicSpec

RETENTION = 86400.0
"""Seconds an event is kept at most, read or not."""
MAX_BATCH = 10
"""Entries in one publish_batch (SNS PublishBatch and EventBridge PutEvents allow 10)."""
MAX_READ = 1000
MAX_ATTRIBUTE_NAME = 256
TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
DEFAULT_TYPE = "nimbus.event"
StartPosition = Literal["latest", "oldest"]


class TopicEvent(msgspec.Struct, kw_only=True, frozen=True):
    """One published event: CloudEvents attributes, message attributes and the JSON payload."""

    sequence: int
    id: str
    time: float
    type: str
    source: str
    subject: str | None = None
    attributes: dict[str, str] = {}
    data: bytes
    """The payload as JSON text (UTF-8)."""
    traceparent: str | None = None

    def json(self) -> Any:
        """The payload decoded."""
        return msgspec.json.decode(self.data)


class PublishEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One event of a batch: the arguments of `publish`."""

    data: Any = None
    type: str = DEFAULT_TYPE
    source: str = ""
    subject: str | None = None
    attributes: dict[str, str] = {}
    traceparent: str | None = None


class PublishResult(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A batch entry's outcome: the event id, or the error that kept it out (nothing else)."""

    id: str | None = None
    error_type: str | None = None
    error: str | None = None


def check_spec(spec: TopicSpec) -> None:
    """Compile each queue subscription's pattern, so that `create` refuses a malformed one
    (InvalidRequest naming the subscription and the bad path) before changing anything."""
    for subscription in spec.subscriptions:
        if subscription.pattern is None:
            continue
        try:
            compile_pattern(subscription.pattern)
        except InvalidRequest as error:
            raise InvalidRequest(
                f"topic {spec.name!r}, subscription of queue {subscription.queue!r}: "
                f"{error.message}"
            ) from None


def encode_entry(topic: str, entry: PublishEntry, max_message_bytes: int) -> bytes:
    """Check an entry as every backend must (InvalidRequest, PayloadTooLarge naming what is
    wrong) and return its payload as JSON; the size counted is the payload's plus the
    attributes' names and values, as SNS counts a message."""
    if not isinstance(entry.type, str) or not entry.type:
        raise InvalidRequest("an event's type is a non-empty string (CloudEvents 'type')")
    if not isinstance(entry.source, str):
        raise InvalidRequest("an event's source is a string (CloudEvents 'source')")
    if entry.subject is not None and (not isinstance(entry.subject, str) or not entry.subject):
        raise InvalidRequest("an event's subject is a non-empty string or None")
    if entry.traceparent is not None and not TRACEPARENT.fullmatch(str(entry.traceparent)):
        raise InvalidRequest(f"traceparent {entry.traceparent!r} is not a W3C trace context")
    try:
        size = _attributes_size(entry.attributes)
        for text in (entry.type, entry.source, entry.subject or ""):
            text.encode()
    except UnicodeEncodeError as error:
        raise InvalidRequest(
            f"an event holds a string that is not valid Unicode: {error}"
        ) from None
    try:
        data = msgspec.json.encode(entry.data)
    except (TypeError, UnicodeEncodeError, msgspec.EncodeError) as error:
        raise InvalidRequest(f"an event's data must be JSON-serialisable: {error}") from None
    size += len(data)
    if size > max_message_bytes:
        raise PayloadTooLarge(
            f"the event is {size} bytes (data and attributes); topic {topic!r} takes at most "
            f"{max_message_bytes}"
        )
    return data


def _attributes_size(attributes: Any) -> int:
    if not isinstance(attributes, dict):
        raise InvalidRequest("attributes are a dict of strings to strings")
    size = 0
    for key, value in attributes.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_ATTRIBUTE_NAME:
            raise InvalidRequest(
                f"attribute name {key!r} is not a string of 1 to {MAX_ATTRIBUTE_NAME} characters"
            )
        if not isinstance(value, str):
            raise InvalidRequest(f"attribute {key!r} has a {type(value).__name__}, not a string")
        size += len(key.encode()) + len(value.encode())
    return size


def pattern_document(event: TopicEvent) -> dict[str, Any]:
    """What a subscription's pattern is matched against (see `nimbus.services.patterns`).

    Build it once per event and match every subscription's pattern against it.
    """
    document: dict[str, Any] = {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": format_time(event.time, 3),
        "attributes": event.attributes,
        "data": event.json(),
    }
    if event.subject is not None:
        document["subject"] = event.subject
    return document


class Topics(Protocol):
    """Every topic of one platform; each method takes the topic's name first."""

    async def create(self, spec: TopicSpec) -> None:
        """Create the topic, or update its configuration keeping its events and consumers;
        InvalidRequest for a malformed subscription pattern (see `check_spec`)."""

    async def delete(self, name: str) -> None:
        """Delete the topic with its events and consumers; deleting a missing topic is a no-op
        (as SNS DeleteTopic)."""

    async def close(self) -> None: ...

    async def publish(
        self,
        name: str,
        data: Any,
        *,
        type: str = DEFAULT_TYPE,
        source: str = "",
        subject: str | None = None,
        attributes: dict[str, str] | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Append one event and return its id once committed. NotFound for an unknown topic,
        PayloadTooLarge when data and attributes exceed the topic's max_message_bytes."""

    async def publish_batch(
        self, name: str, entries: Sequence[PublishEntry]
    ) -> list[PublishResult]:
        """Append the valid entries in one transaction; a result per entry, in order."""

    async def register(self, name: str, consumer: str, start: StartPosition = "latest") -> None:
        """Give `consumer` a durable cursor at the end of the log ("latest": only events
        published from now on) or before its oldest event; a registered consumer keeps its
        cursor (registering is idempotent, also across restarts)."""

    async def unregister(self, name: str, consumer: str) -> None:
        """Forget the consumer's cursor, so it no longer holds back retention."""

    async def cursor(self, name: str, consumer: str) -> int:
        """The sequence of the last event the consumer committed (0 before any)."""

    async def read(self, name: str, consumer: str, limit: int = 100) -> list[TopicEvent]:
        """Up to `limit` events after the consumer's committed cursor, oldest first; reading
        does not move the cursor."""

    async def commit(self, name: str, consumer: str, sequence: int) -> None:
        """Move the consumer's cursor to `sequence` (events up to it are done). A commit below
        the cursor changes nothing, so commits may arrive out of order."""

    async def wait(self, name: str, after: int, timeout: float) -> bool:
        """Wait until an event after sequence `after` is committed (True), or `timeout` seconds
        pass or the backend closes (False)."""

    async def trim(self, now: float | None = None) -> int:
        """Drop events every consumer has committed, and events older than RETENTION; returns
        how many. `now` defaults to the backend's clock."""


# The operations function code may call (through `nimbus.sdk.topic.Topic`).


class Publish(msgspec.Struct, tag="topic.publish", kw_only=True, frozen=True):
    data: Any = None
    type: str = msgspec.field(default=DEFAULT_TYPE, name="event_type")  # "type" is the tag
    source: str = ""
    subject: str | None = None
    attributes: dict[str, str] = {}
    traceparent: str | None = None


class PublishBatch(msgspec.Struct, tag="topic.publish_batch", kw_only=True, frozen=True):
    entries: tuple[PublishEntry, ...]


TopicOp = Publish | PublishBatch


async def perform(service: Topics, resource: str, op: TopicOp) -> Any:
    """Run one SDK operation on topic `resource`; the result is msgspec-encodable."""
    match op:
        case Publish():
            return await service.publish(
                resource,
                op.data,
                type=op.type,
                source=op.source,
                subject=op.subject,
                attributes=op.attributes,
                traceparent=op.traceparent,
            )
        case PublishBatch():
            return await service.publish_batch(resource, op.entries)

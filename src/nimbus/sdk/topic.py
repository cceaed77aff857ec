"""`Topic(name)`: publish events from function code, e.g. `events.publish({"id": 42})`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nimbus.sdk.client import call
from nimbus.services.topic import DEFAULT_TYPE, Publish, PublishBatch, PublishEntry, PublishResult


class Topic:
    """A topic (event bus) the function declared in `uses`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def publish(
        self,
        data: Any,
        *,
        type: str = DEFAULT_TYPE,
        source: str = "",
        subject: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Publish one event and return its id once the platform has stored it. `data` is any
        JSON value (bytes are sent as UTF-8 text); `attributes` are strings that subscription
        patterns can match without parsing the payload."""
        op = Publish(
            data=json_value(data),
            type=type,
            source=source,
            subject=subject,
            attributes=dict(attributes or {}),
        )
        return call(self.name, op, str)

    def publish_batch(self, entries: Iterable[PublishEntry | Any]) -> list[PublishResult]:
        """Publish up to 10 events at once; one result per entry, in order, each with the event's
        id or the error that kept that entry out. A plain value is an entry with that data."""
        batch = PublishBatch(entries=publish_entries(entries))
        return call(self.name, batch, list[PublishResult])


def publish_entries(entries: Iterable[PublishEntry | Any]) -> tuple[PublishEntry, ...]:
    """A batch to publish: PublishEntry objects as they are, anything else as an event's data."""
    return tuple(
        entry if isinstance(entry, PublishEntry) else PublishEntry(data=json_value(entry))
        for entry in entries
    )


def json_value(data: Any) -> Any:
    return bytes(data).decode() if isinstance(data, bytes | bytearray | memoryview) else data

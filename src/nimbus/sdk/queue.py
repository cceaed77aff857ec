"""The handle function code uses to send to a queue, and to poll one itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from nimbus.sdk.client import call
from nimbus.services.queue import (
    ChangeVisibility,
    Delete,
    Message,
    QueueStats,
    Receive,
    Send,
    SendBatch,
    SendBatchResult,
    SendEntry,
    SendResult,
    Stats,
)


def body_text(body: object) -> str:
    """str as it is, bytes as UTF-8 text, anything else as JSON."""
    if isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body).decode()
    return msgspec.json.encode(body).decode()


def send_entries(messages: Iterable[object]) -> list[SendEntry]:
    """A batch to send: SendEntry objects as they are, anything else as a body."""
    return [m if isinstance(m, SendEntry) else SendEntry(body=body_text(m)) for m in messages]


class Queue:
    """A queue the function declares in `uses`: `Queue("orders").send({"id": 7})`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(
        self,
        body: object,
        *,
        delay: float | None = None,
        attributes: Mapping[str, str] | None = None,
        group: str | None = None,
        dedup_id: str | None = None,
    ) -> str:
        """Send one message (committed on return); returns its id. FIFO queues need a group."""
        op = Send(
            body=body_text(body), delay=delay, attributes=dict(attributes or {}), group=group,
            dedup_id=dedup_id,
        )  # fmt: skip
        return call(self.name, op, SendResult).id

    def send_batch(self, messages: Iterable[object]) -> SendBatchResult:
        """Send bodies (or SendEntry objects) together; an invalid one fails alone: see
        `.failed`, and `.sent` (None where an entry failed)."""
        return call(self.name, SendBatch(entries=send_entries(messages)), SendBatchResult)

    def receive(
        self, max_messages: int = 1, *, visibility_timeout: float | None = None, wait: float = 0
    ) -> list[Message]:
        """Up to `max_messages` messages, waiting up to `wait` s for one; delete each when
        done, or it comes back after its visibility timeout."""
        op = Receive(max_messages=max_messages, visibility_timeout=visibility_timeout, wait=wait)
        return call(self.name, op, list[Message])

    def delete(self, receipt: str) -> None:
        """Acknowledge a received message by its receipt."""
        call(self.name, Delete(receipt=receipt), type(None))

    def change_visibility(self, receipt: str, timeout: float) -> None:
        """Keep a received message invisible `timeout` s from now (0: visible now)."""
        call(self.name, ChangeVisibility(receipt=receipt, timeout=timeout), type(None))

    def stats(self) -> QueueStats:
        return call(self.name, Stats(), QueueStats)

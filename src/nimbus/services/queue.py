"""Queues: at-least-once messaging with the semantics of Amazon SQS.

A received message stays in the queue, invisible for its visibility timeout, until the consumer
deletes it with the receipt of that receive; otherwise it becomes visible again and its receive
count goes up. Every receive hands out a new receipt; an older one is stale, and using it is a
Conflict (SQS would answer "succeeded" and maybe not delete). With `max_receives`, a message
that would be received once more is moved instead to the `dead_letter` queue (keeping body,
attributes, group, original send time, last error and the queue it came from) or, without one
(or while it does not exist), to the queue's own dead-letter area. Dead letters can be
re-driven as fresh messages. A message a trigger's failure policy dead-lettered into a queue
carries the queue it failed in as its attribute `nimbus.source` (SQS records this as the system
attribute DeadLetterQueueSourceArn); re-driving to source moves it back too, without the
attributes dead-lettering added.

Delivery order: a standard queue hands out visible messages in the order they became visible
(sent + delay, or their visibility timeout ran out), which is oldest first for new messages. A
message group id on a standard queue is kept (SQS's fair queues) but orders nothing. A FIFO
queue needs a group per message: within a group messages are delivered strictly in send order,
and nothing of a group is delivered while a message of it is in flight; groups are served
oldest head first. FIFO sends are deduplicated by id (or by the body's SHA-256 with
`content_dedup`) within `dedup_window`, also after the first copy was deleted; a duplicate is
accepted and answered with the original message's id and sequence number. Per-message delays
are refused on FIFO queues (SQS allows only the queue's delay there).

A message's size is its body plus its attribute names and values, in UTF-8 bytes. Retention
counts from the original send (a dead-lettered message keeps its send time), and dead letters
in a queue's own area are kept for the queue's retention after they died.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from nimbus.errors import InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from nimbus.spec.resources import QueueSpec

MAX_BATCH = 1000  # entries of one send_batch
MAX_RECEIVE = 10000  # messages of one receive, receipts of one delete_batch
MAX_WAIT = 20.0  # s of long polling, as SQS's WaitTimeSeconds
MAX_DELAY = 900.0  # s, as SQS's DelaySeconds
MAX_VISIBILITY = 43200.0  # s, as SQS's visibility timeout (12 hours)
MAX_ERROR_CHARS = 4096  # of a recorded last error; longer ones are cut
MAX_ATTRIBUTE_NAME = 256
SOURCE_ATTRIBUTE = "nimbus.source"
"""The queue a trigger dead-lettered a message from: an attribute, as its failure's are (the
dead letter is sent as any message is), which also tells re-driving which ones to drop."""
ERROR_ATTRIBUTES = ("RequestID", "ErrorCode", "ErrorMessage")
"""What a dead-lettered event carries about its failure (Lambda's names, in its order)."""

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_TOKEN = re.compile(r"[!-~]{1,128}")  # SQS: group and dedup ids, printable ASCII
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-[ -~]{0,200})?")


class SendEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One message to send: `delay` None takes the queue's; `group` is required on FIFO
    queues; `dedup_id` only on FIFO queues (None there: the body's hash with content_dedup)."""

    body: str
    delay: float | None = None
    attributes: dict[str, str] = {}
    group: str | None = None
    dedup_id: str | None = None
    traceparent: str | None = None


class SendResult(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    sequence: int | None = None
    """FIFO queues: increasing along the queue's messages, never reused; None on standard."""


class EntryError(msgspec.Struct, kw_only=True, frozen=True):
    """Why entry `index` of a batch failed: `error` names the NimbusError class."""

    index: int
    error: str
    message: str


class SendBatchResult(msgspec.Struct, kw_only=True):
    sent: list[SendResult | None]
    """One per entry, in order; None where the entry failed."""
    failed: list[EntryError]


class DeleteBatchResult(msgspec.Struct, kw_only=True):
    deleted: list[int]
    """Indexes of the receipts whose message is gone (deleted now, or before)."""
    failed: list[EntryError]


class Message(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    body: str
    attributes: dict[str, str]
    receipt: str
    """Unique to this receive: delete or change visibility with it."""
    receive_count: int
    sent_at: float
    first_received_at: float
    group: str | None = None
    dedup_id: str | None = None
    sequence: int | None = None
    traceparent: str | None = None
    last_error: str | None = None
    source: str | None = None
    """The queue this message was dead-lettered from, in a dead-letter queue."""


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """A message in a queue's own dead-letter area (or, listed by `moved_here`, one that
    another queue moved to its dead-letter queue)."""

    id: str
    body: str
    attributes: dict[str, str]
    receive_count: int
    """How often it was received in the queue it failed in (`source`)."""
    sent_at: float
    dead_at: float
    source: str
    group: str | None = None
    dedup_id: str | None = None
    traceparent: str | None = None
    last_error: str | None = None


class QueueDeadLettered(msgspec.Struct, kw_only=True, frozen=True):
    """A message the queue moved after `max_receives`, reported once the move is committed."""

    queue: str
    target: str | None
    """Its dead-letter queue; None: the queue's own dead-letter area."""
    id: str
    receive_count: int
    last_error: str | None = None


class QueueStats(msgspec.Struct, kw_only=True, frozen=True):
    visible: int
    in_flight: int
    """Received, and neither deleted nor visible again yet."""
    delayed: int
    """Not received yet, and not visible yet (a delay)."""
    dead_letters: int
    """In the queue's own dead-letter area."""
    oldest_age: float
    """Seconds since the oldest visible message was sent; 0 when none is visible."""


class Queues(Protocol):
    """Every queue of the platform; each method takes the queue's name first. An unknown
    queue is NotFound; invalid arguments are InvalidRequest and change nothing."""

    async def create(self, spec: QueueSpec) -> None:
        """Create, or update the settings of an existing queue keeping its messages; turning
        a queue into FIFO or back is a Conflict. A dead-letter queue must be of the same kind."""

    async def delete(self, name: str) -> None:
        """Remove the queue, its messages and dead letters; nothing to do when it is absent."""

    async def close(self) -> None: ...

    async def send(
        self,
        name: str,
        body: str,
        *,
        delay: float | None = None,
        attributes: Mapping[str, str] | None = None,
        group: str | None = None,
        dedup_id: str | None = None,
        traceparent: str | None = None,
    ) -> SendResult:
        """Committed when this returns; over max_message_bytes is PayloadTooLarge."""

    async def send_batch(self, name: str, entries: Sequence[SendEntry]) -> SendBatchResult:
        """Up to MAX_BATCH entries; each invalid entry fails alone, the others are committed
        together."""

    async def receive(
        self,
        name: str,
        max_messages: int = 1,
        *,
        visibility_timeout: float | None = None,
        wait: float = 0.0,
    ) -> list[Message]:
        """Up to `max_messages` messages in delivery order, invisible for `visibility_timeout`
        (None: the queue's); with `wait`, long-poll up to that many seconds for one."""

    async def delete_message(self, name: str, receipt: str) -> None:
        """Acknowledge: a receipt of a message already gone succeeds; a stale receipt (received
        again since), or on FIFO an expired one, is a Conflict."""

    async def delete_batch(self, name: str, receipts: Sequence[str]) -> DeleteBatchResult:
        """delete_message for each receipt (up to MAX_RECEIVE) in one transaction."""

    async def change_visibility(self, name: str, receipt: str, timeout: float) -> None:
        """Make an in-flight message visible `timeout` seconds from now (0: now); a message not
        in flight is a Conflict, one gone is NotFound."""

    async def release(
        self, name: str, receipt: str, *, error: str | None = None, delay: float = 0.0
    ) -> None:
        """A consumer's failure: record `error` as the message's last error and make it
        visible `delay` seconds from now (also after its visibility timeout ran out)."""

    async def stats(self, name: str) -> QueueStats: ...

    async def dead_letters(self, name: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters of the queue's own area."""

    async def redrive(self, name: str, ids: Sequence[str] | None = None) -> int:
        """Move dead letters of the queue's own area (all, or those ids) back into the queue
        as fresh messages; returns how many."""

    async def moved_here(self, name: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest messages other queues dead-lettered into queue `name` that are not in
        flight, without receiving them (`dead_at`: when they arrived; `source`: where from)."""

    async def redrive_to_source(self, name: str, ids: Sequence[str] | None = None) -> int:
        """Move messages of dead-letter queue `name` (all not in flight, or those ids) back to
        the queues they came from (`source`, else the SOURCE_ATTRIBUTE a trigger gave them,
        which goes with the ERROR_ATTRIBUTES), as fresh messages; returns how many. One
        whose source queue does not exist stays."""

    async def purge(self, name: str) -> None:
        """Remove every message, in flight or not (dead letters stay)."""

    async def sweep(self, now: float) -> int:
        """Remove messages and dead letters past retention and expired dedup ids; returns how
        many messages and dead letters went."""

    def on_dead_letter(self, listener: Callable[[QueueDeadLettered], None]) -> None:
        """Call `listener` (which must not block) for each message moved after `max_receives`,
        after the move is committed; the platform turns these into platform events."""


# Backend-neutral rules every backend applies the same way.


def dead_letter_attributes(
    attributes: Mapping[str, str], source: str, errors: Mapping[str, str]
) -> dict[str, str]:
    """A message's attributes once a trigger dead-lettered it from queue `source` into a queue:
    its own, where it came from, and its failure's `errors` (ERROR_ATTRIBUTES, which replace
    its own of those names: Lambda's consumers read them as the failure's). Re-driving it to
    source drops the added ones: the message goes back with the attributes it was sent with."""
    return {**attributes, SOURCE_ATTRIBUTE: source, **errors}


def check_entry(spec: QueueSpec, entry: SendEntry) -> tuple[float, str | None]:
    """Validate one message for the queue; returns its delay and its deduplication id."""
    _check_size(spec, entry)
    delay = _check_delay(spec, entry.delay)
    if spec.fifo:
        return delay, _check_fifo(spec, entry)
    if entry.dedup_id is not None:
        raise InvalidRequest(f"queue {spec.name!r}: a dedup_id applies only to FIFO queues")
    if entry.group is not None:
        _check_token(spec.name, "group", entry.group)
    return delay, None


def _check_size(spec: QueueSpec, entry: SendEntry) -> None:
    if not entry.body:
        raise InvalidRequest(f"queue {spec.name!r}: the message body is empty")
    try:
        size = len(entry.body.encode())
        for key, value in entry.attributes.items():
            _check_attribute_name(spec.name, key)
            size += len(key.encode()) + len(value.encode())
    except UnicodeEncodeError as error:
        raise InvalidRequest(
            f"queue {spec.name!r}: the message is not valid text: {error}"
        ) from None
    if entry.traceparent is not None and not _TRACEPARENT.fullmatch(entry.traceparent):
        raise InvalidRequest(f"queue {spec.name!r}: {entry.traceparent!r} is no traceparent")
    if size > spec.max_message_bytes:
        raise PayloadTooLarge(
            f"queue {spec.name!r}: message of {size} bytes (body + attributes) is over "
            f"max_message_bytes {spec.max_message_bytes}"
        )


def _check_attribute_name(queue: str, name: str) -> None:
    if len(name) > MAX_ATTRIBUTE_NAME or not _ATTRIBUTE_NAME.fullmatch(name):
        raise InvalidRequest(
            f"queue {queue!r}: attribute name {name!r} is not 1 to {MAX_ATTRIBUTE_NAME} letters, "
            "digits, '-', '_' or inner single '.'"
        )


def _check_delay(spec: QueueSpec, delay: float | None) -> float:
    if delay is None:
        return spec.delay
    if spec.fifo:
        raise InvalidRequest(
            f"queue {spec.name!r} is FIFO: messages take the queue's delay, not their own"
        )
    check_seconds("delay", delay, MAX_DELAY)
    return delay


def _check_fifo(spec: QueueSpec, entry: SendEntry) -> str:
    if entry.group is None:
        raise InvalidRequest(f"queue {spec.name!r} is FIFO: every message needs a group")
    _check_token(spec.name, "group", entry.group)
    if entry.dedup_id is not None:
        _check_token(spec.name, "dedup_id", entry.dedup_id)
        return entry.dedup_id
    if not spec.content_dedup:
        raise InvalidRequest(
            f"queue {spec.name!r} is FIFO without content_dedup: every message needs a dedup_id"
        )
    return hashlib.sha256(entry.body.encode()).hexdigest()


def _check_token(queue: str, what: str, value: str) -> None:
    if not _TOKEN.fullmatch(value):
        raise InvalidRequest(
            f"queue {queue!r}: {what} {value!r} is not 1 to 128 printable ASCII characters"
        )


def check_seconds(what: str, value: float, limit: float) -> None:
    if not 0 <= value <= limit:
        raise InvalidRequest(f"{what} {value!r} is not between 0 and {limit:g} seconds")


def check_receive(max_messages: int, visibility_timeout: float | None, wait: float) -> None:
    if not 1 <= max_messages <= MAX_RECEIVE:
        raise InvalidRequest(f"max_messages {max_messages} is not between 1 and {MAX_RECEIVE}")
    if visibility_timeout is not None:
        check_seconds("visibility_timeout", visibility_timeout, MAX_VISIBILITY)
    check_seconds("wait", wait, MAX_WAIT)


def check_count(what: str, count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise InvalidRequest(f"{count} {what} given; a batch takes 1 to {limit}")


# The operations a function may call through `nimbus.sdk.queue.Queue`.


class Send(SendEntry, tag="queue.send", kw_only=True, frozen=True):
    pass


class SendBatch(msgspec.Struct, tag="queue.send_batch", kw_only=True, frozen=True):
    entries: list[SendEntry]


class Receive(msgspec.Struct, tag="queue.receive", kw_only=True, frozen=True):
    max_messages: int = 1
    visibility_timeout: float | None = None
    wait: float = 0.0


class Delete(msgspec.Struct, tag="queue.delete", kw_only=True, frozen=True):
    receipt: str


class ChangeVisibility(msgspec.Struct, tag="queue.change_visibility", kw_only=True, frozen=True):
    receipt: str
    timeout: float


class Stats(msgspec.Struct, tag="queue.stats", kw_only=True, frozen=True):
    pass


QueueOp = Send | SendBatch | Receive | Delete | ChangeVisibility | Stats


async def perform(service: Queues, resource: str, op: QueueOp) -> Any:
    match op:
        case Send():
            return await service.send(
                resource, op.body, delay=op.delay, attributes=op.attributes, group=op.group,
                dedup_id=op.dedup_id, traceparent=op.traceparent,
            )  # fmt: skip
        case SendBatch():
            return await service.send_batch(resource, op.entries)
        case Receive():
            return await service.receive(
                resource, op.max_messages, visibility_timeout=op.visibility_timeout, wait=op.wait
            )
        case Delete():
            return await service.delete_message(resource, op.receipt)
        case ChangeVisibility():
            return await service.change_visibility(resource, op.receipt, op.timeout)
        case Stats():
            return await service.stats(resource)

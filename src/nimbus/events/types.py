"""The typed events nimbus-style handlers receive, one class per source.

Triggers build them in the controller and encode them with msgspec; the worker decodes the
payload with `PAYLOADS[trigger kind]`. Each event carries its CloudEvents attributes (`id`,
`source`, `type`, `time`, `traceparent`); `time` is seconds since the epoch, like every time
in nimbus. A batch handler reports failed items with `BatchResult(failed=[ids])`, and why
with its `reasons` (or Lambda's `{"batchItemFailures": [...]}`); `failed_items` reads either.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from time import time as _now
from typing import Any, Generic, Literal, TypeVar

import msgspec

from nimbus.errors import InvalidRequest
from nimbus.ids import new_id
from nimbus.json_input import decode_json
from nimbus.sdk.progress import Progress

ChangeKind = Literal["INSERT", "MODIFY", "REMOVE"]
ObjectKind = Literal["created", "deleted"]
WebSocketKind = Literal["connect", "message", "disconnect"]


class Event(msgspec.Struct, kw_only=True, frozen=True):
    """CloudEvents context attributes; `source` names the resource (`nimbus:queue:orders`)."""

    source: str
    type: str
    id: str = msgspec.field(default_factory=new_id)
    time: float = msgspec.field(default_factory=_now)
    traceparent: str | None = None


class QueueMessage(Event, kw_only=True, frozen=True):
    """A message received from a queue; `receipt` acknowledges this receipt of it."""

    type: str = "nimbus.queue.message"
    body: str
    attributes: dict[str, str] = {}
    receive_count: int = 1
    sent_at: float = msgspec.field(default_factory=_now)
    first_received_at: float | None = None
    receipt: str | None = None
    group: str | None = None
    """The FIFO message group; None on a standard queue."""
    dedup_id: str | None = None
    sequence: int | None = None
    """FIFO only: the message's place in its queue."""

    def json(self) -> Any:
        """The body decoded as JSON."""
        return _decode_json(self.body, f"the body of message {self.id}")


class TopicEvent(Event, kw_only=True, frozen=True):
    """An event published to a topic; `type`, `source` and `subject` are the publisher's."""

    type: str = "nimbus.topic.event"
    data: Any = None
    attributes: dict[str, str] = {}
    subject: str | None = None


class StreamRecord(Event, kw_only=True, frozen=True):
    """A record of a stream partition, in sequence order within it."""

    type: str = "nimbus.stream.record"
    partition: int
    sequence: int
    key: str
    data: bytes
    arrival: float = msgspec.field(default_factory=_now)

    def text(self) -> str:
        return self.data.decode("utf-8")

    def json(self) -> Any:
        """The data decoded as JSON."""
        return _decode_json(self.data, f"the data of record {self.sequence}")


class TableChange(Event, kw_only=True, frozen=True):
    """One committed change of a table item; `expired` marks a removal by TTL."""

    type: str = "nimbus.table.change"
    kind: ChangeKind
    key: dict[str, Any]
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    sequence: int
    expired: bool = False


class ObjectEvent(Event, kw_only=True, frozen=True):
    """An object was created (put) in, or deleted from, a bucket."""

    type: str = "nimbus.bucket.object"
    bucket: str
    key: str
    kind: ObjectKind
    size: int = 0
    etag: str | None = None
    sequence: int = 0
    """Orders the events of one bucket (S3's `sequencer`)."""


class ScheduleTick(Event, kw_only=True, frozen=True):
    """A tick of a schedule; `time` is when it was due (a missed tick fires later)."""

    type: str = "nimbus.schedule.tick"
    expression: str
    payload: Any = None

    @property
    def scheduled_at(self) -> float:
        return self.time


class MqttMessage(Event, kw_only=True, frozen=True):
    """A message an MQTT broker delivered: published to `topic`, matched by the trigger's
    `filter`. `retain` is the publisher's retain flag; `properties` the MQTT 5 user properties
    (a repeated name keeps its last value)."""

    type: str = "nimbus.mqtt.message"
    broker: str
    topic: str
    filter: str
    payload: bytes
    qos: int
    retain: bool = False
    content_type: str | None = None
    properties: dict[str, str] = {}

    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return _decode_json(self.payload, f"the payload of the message on {self.topic!r}")


WEBHOOK_DELIVERY = "nimbus.webhook.delivery"


class WebhookEvent(Event, kw_only=True, frozen=True):
    """A verified webhook delivery. `id` is the provider's delivery id (a redelivery has the
    same), `type` the provider's event type when it names one (`X-GitHub-Event`, the JSON
    body's `type`). Pass `progress_token` on to the functions that carry on the work, so that
    they can report on it with `Progress(token)`."""

    type: str = WEBHOOK_DELIVERY
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names; a repeated header's values joined by commas."""
    body: bytes
    progress_token: str
    status_url: str

    @property
    def delivery_id(self) -> str:
        return self.id

    @property
    def progress(self) -> Progress:
        return Progress(self.progress_token)

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return _decode_json(self.body, f"the body of delivery {self.id}")


class WebSocketEvent(Event, kw_only=True, frozen=True):
    """A client connected to a WebSocket API, sent it a message, or went away.

    `connect` carries the handshake's `headers` (lower-case names) and `query`; `message` the
    text (`text`) or binary (`data`) message; `disconnect` the close `code` and `reason`.
    """

    type: str = "nimbus.websocket.message"
    api: str
    connection_id: str
    route: str
    kind: WebSocketKind
    connected_at: float
    text: str | None = None
    data: bytes | None = None
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    source_ip: str = ""
    subprotocols: list[str] = []
    code: int | None = None
    reason: str = ""

    @property
    def body(self) -> str | bytes | None:
        """The message as it came: text, bytes, or None (connect and disconnect)."""
        return self.text if self.text is not None else self.data

    def json(self) -> Any:
        """The message decoded as JSON (InvalidRequest if it is not JSON)."""
        raw = self.body
        if raw is None:
            raise InvalidRequest(f"a {self.kind} event has no message")
        return _decode_json(raw, "the message")


E = TypeVar("E", bound=Event)


class Batch(msgspec.Struct, Generic[E], kw_only=True, frozen=True):
    """Iterate a batch for its events; `ids` are what a handler reports as failed."""

    def events(self) -> list[E]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[E]:
        return iter(self.events())

    def __len__(self) -> int:
        return len(self.events())

    @property
    def ids(self) -> list[str]:
        return [event.id for event in self.events()]


class QueueBatch(Batch[QueueMessage], kw_only=True, frozen=True):
    messages: list[QueueMessage]

    def events(self) -> list[QueueMessage]:
        return self.messages


class StreamBatch(Batch[StreamRecord], kw_only=True, frozen=True):
    """Records of one partition, in order."""

    records: list[StreamRecord]

    def events(self) -> list[StreamRecord]:
        return self.records


class TableBatch(Batch[TableChange], kw_only=True, frozen=True):
    changes: list[TableChange]

    def events(self) -> list[TableChange]:
        return self.changes


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "queue": QueueBatch,
    "topic": TopicEvent,
    "stream": StreamBatch,
    "table": TableBatch,
    "bucket": ObjectEvent,
    "schedule": ScheduleTick,
    "websocket": WebSocketEvent,
    "webhook": WebhookEvent,
    "mqtt": MqttMessage,
}
"""The event type a nimbus-style handler receives, by trigger kind (`QueueTrigger.type`, ...)."""


class BatchResult(msgspec.Struct, kw_only=True):
    """What a batch handler returns when some items failed: only those are retried.

    `reasons` says why, by id (any of `failed`, optional): a reason becomes the item's error
    in its retry, its dead letter and its on-failure destination record, where otherwise they
    could only say that the handler reported it.
    """

    failed: list[str] = []
    reasons: dict[str, str] = {}

    def fail(self, item: str, reason: str | None = None) -> None:
        """Report the item with id `item` as failed, and why when `reason` is given."""
        self.failed.append(item)
        if reason is not None:
            self.reasons[item] = reason


class InvalidBatchResponse(InvalidRequest, ValueError):
    """A batch handler's answer is not a batch result; the whole batch counts as failed."""


def failed_items(result: object, batch: Collection[str] | None = None) -> dict[str, str | None]:
    """The ids a batch handler reported as failed, without repeats, in the order given, each
    with the reason it gave (None: none; an empty reason counts as none).

    Accepts None (all succeeded), `BatchResult` (or its JSON form `{"failed": [...],
    "reasons": {...}}`) and Lambda's `{"batchItemFailures": [{"itemIdentifier": id}, ...]}` (a
    null list: none failed). Anything else, an id not in `batch`, or a reason that is not a
    string for one of the failed ids, raises InvalidBatchResponse naming what is wrong.
    """
    if result is None:
        return {}
    if isinstance(result, BatchResult):
        ids = _checked_ids(result.failed, batch, "BatchResult.failed")
        return _with_reasons(ids, result.reasons, "BatchResult.reasons")
    if isinstance(result, Mapping):
        return _with_reasons(_mapping_ids(result, batch), result.get("reasons"), "reasons")
    raise InvalidBatchResponse(
        "a batch handler returns None, BatchResult(failed=[ids]) or "
        f'{{"batchItemFailures": [...]}}, not {type(result).__name__}'
    )


def _mapping_ids(result: Mapping[Any, Any], batch: Collection[str] | None) -> list[str]:
    keys = {"failed", "batchItemFailures"} & set(result)
    if len(keys) != 1:
        raise InvalidBatchResponse(
            "a batch handler's dict has exactly one of 'failed' or 'batchItemFailures', "
            f"not keys {sorted(map(str, result))}"
        )
    if "failed" in keys:
        return _checked_ids(result["failed"], batch, "failed")
    failures = result["batchItemFailures"]
    if failures is None:
        return []
    if not isinstance(failures, list | tuple):
        raise InvalidBatchResponse(f"batchItemFailures is a list, not {type(failures).__name__}")
    ids = []
    for number, entry in enumerate(failures):
        if not isinstance(entry, Mapping) or "itemIdentifier" not in entry:
            raise InvalidBatchResponse(
                f"batchItemFailures[{number}] is not an object with an itemIdentifier: {entry!r}"
            )
        ids.append(entry["itemIdentifier"])
    return _checked_ids(ids, batch, "batchItemFailures")


def _with_reasons(ids: list[str], reasons: object, where: str) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(ids)
    if reasons is None:
        return found
    if not isinstance(reasons, Mapping):
        raise InvalidBatchResponse(
            f"{where} maps failed ids to reasons, not {type(reasons).__name__}"
        )
    for item, reason in reasons.items():
        if item not in found:
            raise InvalidBatchResponse(f"{where}: {item!r} is not one of the failed ids")
        if not isinstance(reason, str):
            raise InvalidBatchResponse(f"{where}[{item!r}] is not a string: {reason!r}")
        found[item] = reason or None
    return found


def _checked_ids(ids: object, batch: Collection[str] | None, where: str) -> list[str]:
    if not isinstance(ids, list | tuple):
        raise InvalidBatchResponse(f"{where} is a list of ids, not {type(ids).__name__}")
    for number, item in enumerate(ids):
        if not isinstance(item, str) or not item:
            raise InvalidBatchResponse(f"{where}[{number}] is not a non-empty string id: {item!r}")
        if batch is not None and item not in batch:
            raise InvalidBatchResponse(f"{where}[{number}]: {item!r} is not an item of this batch")
    return list(dict.fromkeys(ids))


def _decode_json(raw: str | bytes, what: str) -> Any:
    try:
        return decode_json(raw)
    except msgspec.DecodeError as error:
        raise InvalidRequest(f"{what} is not valid JSON: {error}") from None

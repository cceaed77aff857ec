"""One operation on a declared resource, whoever asks: a function through its SDK handle
(msgpack over its service socket) or an outside system through the platform API (JSON). Both
find the resource's kind in the spec, decode the operation as that kind's, and run the
service's own `perform`, so the two have the same semantics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from nimbus.errors import NotFound
from nimbus.services import bucket, queue, stream, table, topic, websockets

if TYPE_CHECKING:
    from nimbus.services.catalog import ServiceSet
    from nimbus.spec.model import AppSpec

Kind = Literal["queue", "topic", "stream", "table", "bucket", "websocket"]

OPERATIONS: dict[Kind, Any] = {
    "queue": queue.QueueOp,
    "topic": topic.TopicOp,
    "stream": stream.StreamOp,
    "table": table.TableOp,
    "bucket": bucket.BucketOp,
    "websocket": websockets.WebSocketOp,
}
"""Each kind's operations: a union of tagged msgspec structs (the tag: `kind.operation`)."""


def kind_of(spec: AppSpec | None, name: str) -> Kind:
    """The kind of the declared resource `name`; NotFound if the app declares none."""
    if spec is not None:
        kinds: dict[Kind, dict[str, Any]] = {
            "queue": spec.queues, "topic": spec.topics, "stream": spec.streams,
            "table": spec.tables, "bucket": spec.buckets, "websocket": spec.websockets,
        }  # fmt: skip
        for kind, declared in kinds.items():
            if name in declared:
                return kind
    raise NotFound(f"no resource named {name!r}")


def operation_kind(tag: object) -> Kind | None:
    """The kind an operation's tag (`"table.get"`) belongs to, if it names one."""
    kind = tag.partition(".")[0] if isinstance(tag, str) else None
    return kind if kind in OPERATIONS else None


async def perform(
    services: ServiceSet, kind: Kind, name: str, op: Any, *, traceparent: str | None = None
) -> Any:
    """Run `op` (one of OPERATIONS[kind]) on resource `name`; the result is msgspec-encodable."""
    match kind:
        case "queue":
            return await queue.perform(services.queues, name, op)
        case "topic":
            return await topic.perform(services.topics, name, op)
        case "stream":
            return await stream.perform(services.streams, name, op)
        case "table":
            return await table.perform(services.tables, name, op, traceparent=traceparent)
        case "bucket":
            return await bucket.perform(services.buckets, name, op)
        case "websocket":
            return await websockets.perform(services.websockets, name, op)

"""What one service operation adds to its resource's metrics, as the AWS service a price sheet
prices it like would count it: SQS bills every 64 KiB of a request as one request, SNS every
message of a batch, Kinesis on-demand every record rounded up to 1 KiB, DynamoDB per item, S3
GETs and PUTs at different rates. Pure functions of the operation and its result: nothing here
is read back from a backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from nimbus.ops.usage.catalog import OPERATION_PREFIX
from nimbus.services import bucket, queue, stream, table, topic, websockets

SQS_CHUNK = 64 * 1024
"""SQS: 'each 64 KB chunk of a payload is billed as 1 request'."""
KINESIS_UNIT = 1024
"""Kinesis on-demand: data in is 'the size of each record rounded up to the nearest 1 KB'."""
GIB = 1 << 30

Increment = tuple[str, float]


def measure(op: Any, result: Any) -> Iterator[Increment]:
    """The metrics `op` (one of a kind's OPERATIONS, which `result` answered) adds to."""
    kind, _, name = str(type(op).__struct_config__.tag).partition(".")
    yield OPERATION_PREFIX + name, 1
    yield from _BY_KIND[kind](op, result)


def sqs_requests(payload_bytes: int) -> int:
    """Requests SQS bills for one request carrying `payload_bytes` (at least one)."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK))


def kinesis_gib(record_bytes: int) -> float:
    """GiB of data-in Kinesis on-demand bills for one record (at least 1 KiB)."""
    return max(1, math.ceil(record_bytes / KINESIS_UNIT)) * KINESIS_UNIT / GIB


def _queue(op: Any, result: Any) -> Iterator[Increment]:
    match op:
        case queue.Send():
            yield "requests", sqs_requests(len(op.body.encode()))
            yield "messages_sent", 1
        case queue.SendBatch():
            yield "requests", sqs_requests(sum(len(e.body.encode()) for e in op.entries))
            yield "messages_sent", sum(1 for sent in result.sent if sent is not None)
        case queue.Receive():
            yield "requests", 1
            yield "messages_received", len(result)
        case _:
            yield "requests", 1


def _topic(op: Any, result: Any) -> Iterator[Increment]:
    if isinstance(op, topic.PublishBatch):
        yield "requests", sum(1 for published in result if published.error is None)
    else:
        yield "requests", 1


def _stream(op: Any, result: Any) -> Iterator[Increment]:
    match op:
        case stream.Put():
            sizes = [len(op.data)]
        case stream.PutBatch():
            sizes = [len(data) for _, data in op.entries]
        case _:
            sizes = []
    yield "requests", 1
    if sizes:
        yield "records", len(sizes)
        yield "ingested_gb", sum(kinesis_gib(size) for size in sizes)


def _table(op: Any, result: Any) -> Iterator[Increment]:
    yield "requests", 1
    match op:
        case table.Put() | table.Delete() | table.Update():
            yield "write_units", 1
        case table.Query() | table.Scan():
            yield "read_units", max(1, len(result.items))
        case _:
            yield "read_units", 1


def _bucket(op: Any, result: Any) -> Iterator[Increment]:
    yield "requests", 1
    match op:
        case bucket.GetObject() | bucket.HeadObject():
            yield "read_requests", 1
        case bucket.DeleteObject() | bucket.AbortUpload():
            pass  # S3 does not charge DELETE and abort requests
        case _:  # PUT, LIST and the steps of a multipart upload
            yield "write_requests", 1


def _websocket(op: Any, result: Any) -> Iterator[Increment]:
    yield "requests", 1
    match op:
        case websockets.Send():
            yield "messages", 1
        case websockets.SendToGroup() | websockets.Broadcast():
            yield "messages", result if isinstance(result, int) else 0


_BY_KIND: dict[str, Callable[[Any, Any], Iterator[Increment]]] = {
    "queue": _queue, "topic": _topic, "stream": _stream, "table": _table, "bucket": _bucket,
    "websocket": _websocket,
}  # fmt: skip
